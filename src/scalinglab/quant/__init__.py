"""Post-training quantization: RTN, LLM.int8(), SmoothQuant, OutlierTune in real int8; weight-only W8/W6/W4A16.

    from scalinglab.quant import SmoothQuantConfig, quantize_
    quantize_(model, SmoothQuantConfig(alpha=0.5), calib=calib_batches)     # in place
    quantize_(model, config_for(name, bits=4))                              # by --method name, as the CLI does

Modules: config (MethodConfig, the base of every method's config), methods/ (one module per method:
its config, its float-linear → quantized-module conversion, its registration), registry (config type →
method, name → config), apply (quantize_: calibration and model surgery shared by all methods),
primitives (absmax math), linear (QuantLinear, the int8 run-time layer), calibrate (hooks), io
(safetensors + quantization.json), checks (untrusted directories), models (loading, batching),
evaluate (perplexity, bytes, speed), analyze (outlier table), pipeline and cli.
"""

__all__ = ["MethodConfig", "RTNConfig", "LLMInt8Config", "SmoothQuantConfig", "OutlierTuneConfig", "WeightOnlyConfig",
           "QuantLinear",
           "quantize_", "config_for", "config_from_dict", "method_names", "find_linears", "find_norm_pairs"]

_LAZY = {"MethodConfig": "config", "QuantLinear": "linear", "quantize_": "apply", "find_linears": "apply",
         "find_norm_pairs": "apply", "config_for": "registry", "config_from_dict": "registry",
         "method_names": "registry", "RTNConfig": "methods.rtn", "LLMInt8Config": "methods.llm_int8",
         "SmoothQuantConfig": "methods.smoothquant", "OutlierTuneConfig": "methods.outliertune",
         "WeightOnlyConfig": "methods.weight_only"}


def __getattr__(name: str):
    # torch loads only when the API is used, so `scalinglab --help` (which imports quant.cli) stays fast
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"scalinglab.quant.{_LAZY[name]}"), name)
    raise AttributeError(name)
