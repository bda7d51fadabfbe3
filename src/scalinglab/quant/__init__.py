"""Post-training quantization: RTN, LLM.int8(), SmoothQuant, OutlierTune, executed in real int8."""
