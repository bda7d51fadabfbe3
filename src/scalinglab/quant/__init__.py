"""Post-training quantization: RTN, LLM.int8(), SmoothQuant, OutlierTune, executed in real int8.

    from scalinglab.quant import QuantConfig, quantize_
    quantize_(model, QuantConfig(method="llm.int8"), calib_batches, forward_logits)

Modules: config (QuantConfig), primitives (absmax math), linear (QuantLinear), rtn / llm_int8 /
smoothquant / outliertune (one method each), calibrate (hooks), apply (model surgery), io (safetensors),
models (loading, batching), evaluate (perplexity, bytes, speed), analyze (outlier table), cli.
"""

__all__ = ["QuantConfig", "QuantLinear", "quantize_", "find_linears", "find_norm_pairs"]

_LAZY = {"QuantConfig": "config", "QuantLinear": "linear", "quantize_": "apply", "find_linears": "apply",
         "find_norm_pairs": "apply"}


def __getattr__(name: str):
    # torch loads only when the API is used, so `scalinglab --help` (which imports quant.cli) stays fast
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"scalinglab.quant.{_LAZY[name]}"), name)
    raise AttributeError(name)
