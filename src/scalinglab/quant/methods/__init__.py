"""One module per quantization method. Each defines its frozen config and registers itself.

Adding a method = adding its module here and one line to ``MODULES`` (its name → module), nothing else:
``quantize_``, the CLI's ``--method``, saving and loading all go through ``scalinglab.quant.registry``.
The list stays free of imports so ``scalinglab --help`` does not load torch.
"""

MODULES = {
    "rtn": "rtn",
    "llm.int8": "llm_int8",
    "smoothquant": "smoothquant",
    "outliertune": "outliertune",
    "weight_only": "weight_only",
    "squant": "squant",
}
DEFAULT = "llm.int8"  # `scalinglab quantize` without --method
