"""Optional extras: the packages each one brings, and the one-line error when a command's extra is missing.

``pip install scalinglab`` is the light core (fits, forecasts, plans, reports: no torch). The ladder
trainer and the quantizer need the torch stack, the Ray executor needs ray. A command that needs an extra
calls :func:`require_extra` before its work, or simply imports what it needs: :func:`scalinglab.cli.main`
turns a :class:`MissingExtra`, or a ``ModuleNotFoundError`` of a package that only an extra brings, into

    error: 'scalinglab ladder run' needs the [ladder] extra: pip install 'scalinglab[ladder]'

and exit status 2. Which extra a command names is decided here, in one table, not in each command.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "COMMAND_EXTRAS", "MissingExtra", "require_extra", "is_installed", "extra_for", "message"]

TORCH_STACK = ("torch", "safetensors", "tokenizers", "transformers")

EXTRAS: dict[str, tuple[str, ...]] = {
    "ladder": TORCH_STACK,
    "quant": TORCH_STACK,
    "ray": ("ray",),
}

# The extra a command names when a package of the torch stack is missing (longest command prefix wins).
COMMAND_EXTRAS: dict[str, str] = {
    "ladder": "ladder",
    "demo": "ladder",
    "score-tasks": "ladder",
    "quantize": "quant",
    "evaluate": "quant",
    "doctor": "quant",
    "bench": "quant",
    "bench train": "ladder",
    "data quant-example": "quant",
}


class MissingExtra(Exception):
    """A package that only an extra brings is not installed."""

    def __init__(self, extra: str, module: str):
        super().__init__(f"needs the [{extra}] extra (no module {module!r})")
        self.extra = extra
        self.module = module


def is_installed(module: str) -> bool:
    """Whether ``module`` (a top-level package name) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # an import hook that refuses it, or a half-initialised module
        return False


def require_extra(extra: str, *modules: str) -> None:
    """Raise :class:`MissingExtra` unless every package of ``extra`` (or just ``modules``) is installed."""
    for module in modules or EXTRAS[extra]:
        if not is_installed(module):
            raise MissingExtra(extra, module)


def extra_for(command: str, module: str) -> str | None:
    """The extra that brings ``module`` for ``command`` ("ladder run"), or None if no extra brings it."""
    root = module.split(".")[0]
    if root in EXTRAS["ray"]:
        return "ray"
    if root not in TORCH_STACK:
        return None
    words = command.split()
    for n in range(len(words), 0, -1):
        extra = COMMAND_EXTRAS.get(" ".join(words[:n]))
        if extra is not None:
            return extra
    return "all"


def message(command: str, extra: str) -> str:
    """The one line a command prints when its extra is missing."""
    where = f"scalinglab {command}".strip()
    return f"'{where}' needs the [{extra}] extra: pip install 'scalinglab[{extra}]'"
