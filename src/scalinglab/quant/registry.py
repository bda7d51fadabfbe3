"""Config class → method, name → config class, and the run-time module kinds a checkpoint may hold.

Each module of ``quant/methods/`` calls :func:`register` with a :class:`Method`: its config class, the
function that turns one float linear (plus its calibration statistics, when the method uses any) into a
quantized module, and optionally a hook that rewrites norm → linear pairs of the float model first
(SmoothQuant's smoothing, OutlierTune's symmetrization). ``quantize_`` dispatches on the config's type;
the CLI maps ``--method NAME`` to a config through :func:`config_for`; ``quantization.json`` maps back
through :func:`config_from_dict`. Nothing outside the method modules branches on a method's name.

A quantized checkpoint rebuilds its modules through :class:`RuntimeModule` entries (the int8
``QuantLinear`` is built in; a method with its own run-time layer registers it with
:func:`register_runtime`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scalinglab.errors import InputError
from scalinglab.quant.config import MethodConfig
from scalinglab.quant.methods import MODULES

__all__ = ["Method", "RuntimeModule", "register", "register_runtime", "method_names", "method_for",
           "config_class", "config_for", "config_from_dict", "runtime_kinds", "runtime_kind_of"]


@dataclass(frozen=True)
class Method:
    """What a method module provides.

    config:       its frozen config class (``name`` is the ``--method`` name)
    linear:       ``(w (out × in, float32), bias | None, stats | None, config, **hints) → nn.Module``
    pair_rewrite: optional; ``(norm, {name: linear}, stats, config) → {name: hints}``, rewriting one norm →
                  linears pair of the float model in place so that its float outputs do not change
                  (``quantize_`` checks this and rolls back); may replace entries of ``stats`` by the
                  statistics of the rewritten inputs; the hints are passed on to ``linear``
    pair_hints:   optional, read-only; ``(norm, {name: linear}, config) → {name: hints}`` from each norm →
                  linears pair without changing the model (SQuant's input moments from the norm's affine
                  parameters); the hints are passed on to ``linear``
    model_hints:  optional, read-only; ``(model, {name: linear}, config, forward) → {name: hints}`` from the
                  whole float model before any linear is swapped (SQuant's input moments from text the
                  model samples itself); the hints are passed on to ``linear``
    also_serves:  (name, activations) pairs of ``--method`` / ``--activations`` that mean this method,
                  e.g. ``("rtn", "none")`` for round-to-nearest weight-only
    """

    config: type[MethodConfig]
    linear: Callable[..., Any]
    pair_rewrite: Callable[..., dict[str, dict]] | None = None
    pair_hints: Callable[..., dict[str, dict]] | None = None
    model_hints: Callable[..., dict[str, dict]] | None = None
    also_serves: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RuntimeModule:
    """A module class a quantized checkpoint may hold, keyed by ``kind`` in ``quantization.json``.

    spec(module) → dict; check(name, spec, float_module, where) raises InputError; build(spec) → empty
    module; validate(name, module, where), optional: checks of the loaded tensors beyond name, shape,
    dtype and finiteness (which every load checks), e.g. codes within the bit width.
    """

    kind: str
    cls: type
    spec: Callable[[Any], dict]
    check: Callable[[str, Any, Any, str], None]
    build: Callable[[dict], Any]
    validate: Callable[[str, Any, str], None] | None = None


_BY_CONFIG: dict[type, Method] = {}
_BY_NAME: dict[str, Method] = {}
_RUNTIME: dict[str, RuntimeModule] = {}
_loaded = False


def register(method: Method) -> Method:
    name = method.config.name
    if not name or name in _BY_NAME and _BY_NAME[name].config is not method.config:
        raise ValueError(f"method name {name!r} is empty or registered twice")
    _BY_CONFIG[method.config] = _BY_NAME[name] = method
    return method


def register_runtime(rt: RuntimeModule) -> RuntimeModule:
    """Register a run-time module kind once, in the module that owns it (a second registration of the same
    kind would silently replace its checks, so it is an error)."""
    if rt.kind in _RUNTIME and _RUNTIME[rt.kind] is not rt:
        raise ValueError(f"run-time kind {rt.kind!r} is registered twice; register it in one module only")
    _RUNTIME[rt.kind] = rt
    return rt


def _load() -> None:
    """Import every method module once (each registers itself) and the built-in int8 runtime module."""
    global _loaded
    if _loaded:
        return
    _register_quant_linear()
    for name, module in MODULES.items():
        importlib.import_module(f"scalinglab.quant.methods.{module}")
        if name not in _BY_NAME:
            raise ImportError(f"scalinglab.quant.methods.{module} did not register a method named {name!r}")
    _loaded = True


def _register_quant_linear() -> None:
    from scalinglab.quant.checks import check_module_spec
    from scalinglab.quant.linear import QuantLinear

    if "QuantLinear" in _RUNTIME:
        return
    register_runtime(RuntimeModule(kind="QuantLinear", cls=QuantLinear, spec=lambda m: m.spec(),
                                   check=check_module_spec, build=lambda spec: QuantLinear(**spec)))


def method_names() -> tuple[str, ...]:
    """The ``--method`` names, without importing any method (the CLI's help text)."""
    return tuple(MODULES)


def method_for(config: MethodConfig) -> Method:
    _load()
    method = _BY_CONFIG.get(type(config))
    if method is None:
        raise InputError(f"config: {type(config).__name__} is not a registered quantization method config")
    return method


def config_class(name: str) -> type[MethodConfig]:
    _load()
    if name not in _BY_NAME:
        raise InputError(f"--method: expected one of {', '.join(_BY_NAME)}, got {name!r}")
    return _BY_NAME[name].config


def _resolve(name: str, activations: str | None) -> type[MethodConfig]:
    cls = config_class(name)
    if activations is None or activations == cls.activations or "activations" in cls.field_names():
        return cls
    for method in _BY_NAME.values():
        if (name, activations) in method.also_serves:
            return method.config
    return cls  # from_options names the mismatch


def config_for(name: str, **options: Any) -> MethodConfig:
    """The config of ``--method name`` from CLI options (None: not given), e.g.
    ``config_for("smoothquant", bits=8, alpha=0.6)``, ``config_for("rtn", activations="none", bits=4)``."""
    cls = _resolve(name, options.get("activations"))
    return cls.from_options(**options)


def config_from_dict(d: Any, ignore: tuple[str, ...] = ()) -> MethodConfig:
    """A config read back from JSON (``{"method": name, **fields}``); InputError names the bad field."""
    if not isinstance(d, dict):
        raise InputError(f"expected an object, got {type(d).__name__}")
    name = d.get("method")
    _load()
    if not isinstance(name, str) or name not in _BY_NAME:
        raise InputError(f"method: expected one of {', '.join(_BY_NAME)}, got {name!r}")
    return _BY_NAME[name].config.from_dict(d, ignore=ignore)


def runtime_kinds() -> dict[str, RuntimeModule]:
    _load()
    return dict(_RUNTIME)


def runtime_kind_of(module: Any) -> RuntimeModule | None:
    """The registered run-time kind of ``module`` (exact class), or None for a float module."""
    _load()
    for rt in _RUNTIME.values():
        if type(module) is rt.cls:
            return rt
    return None
