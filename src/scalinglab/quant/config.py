"""The base of every method's config: frozen, validated once, read back from untrusted JSON field by field.

Each method module (``quant/methods/``) defines one subclass with only its own fields and the paper's
defaults, e.g. ``RTNConfig(bits_w=4)`` or ``SmoothQuantConfig(alpha=0.5)``. What the rest of the code
needs from a config, whatever the method:

- ``name`` (ClassVar): the method's name on the command line and in ``quantization.json``;
- ``activations`` (ClassVar, or a field where a method offers both): ``"int8"`` (weights and activations
  quantized, integer matmul) or ``"none"`` (weight-only; activations stay in floating point);
- ``bits_w`` / ``bits_a``: weight and activation bit widths (``bits_a`` is None for weight-only);
- ``needs_calibration``: whether ``quantize_`` must be given calibration batches;
- ``skip``: module-name substrings left in floating point (the LM head by default);
- ``to_dict`` / ``from_dict`` (JSON round trip; ``from_dict`` checks every key and type and raises a
  one-line :class:`InputError` naming the field) and ``from_options`` (the CLI's flags).

Bit widths 8, 6 and 4 are stored in int8 containers: a b-bit symmetric code uses [-(2^(b-1)-1), 2^(b-1)-1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from scalinglab.errors import InputError

__all__ = ["BITS", "OUTLIER_THRESHOLD", "MethodConfig", "check_bits", "check_choice"]

BITS = (8, 6, 4)
OUTLIER_THRESHOLD = 6.0  # Dettmers et al. 2022, Sec. 3.2: |x| >= 6 marks an outlier feature dimension
DEFAULT_SKIP = ("lm_head",)


def check_bits(name: str, value: Any, allowed: tuple[int, ...] = BITS) -> None:
    if value not in allowed or isinstance(value, bool):
        raise InputError(f"{name}: expected one of {', '.join(map(str, allowed))}, got {value!r}")


def check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise InputError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")


def _type_ok(value: Any, annotation: str) -> bool:
    """Whether a JSON value fits a field annotation (``from __future__`` keeps annotations as strings)."""
    nullable = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    if value is None:
        return nullable
    if base == "bool":
        return isinstance(value, bool)
    if base == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if base == "float":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if base == "str":
        return isinstance(value, str)
    if base == "tuple[str, ...]":
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    raise TypeError(f"no JSON check for annotation {annotation!r}")


@dataclass(frozen=True, kw_only=True)
class MethodConfig:
    """Fields every method has; subclasses add their own and validate them in ``validate``."""

    name: ClassVar[str] = ""
    activations: ClassVar[str] = "int8"
    # (flag, field) pairs: a CLI option that sets a field of another name (``--bits`` sets bits_w and bits_a)
    option_fields: ClassVar[dict[str, tuple[str, ...]]] = {"bits": ("bits_w", "bits_a")}

    skip: tuple[str, ...] = DEFAULT_SKIP

    def __post_init__(self) -> None:
        if not isinstance(self.skip, tuple) or not all(isinstance(s, str) for s in self.skip):
            raise InputError(f"skip: expected a list of module-name substrings, got {self.skip!r}")
        self.validate()

    def validate(self) -> None:
        """Domain checks of the subclass's own fields; raise InputError("<field>: expected …, got …")."""

    @property
    def needs_calibration(self) -> bool:
        return False

    @property
    def label(self) -> str:
        """Short description for tables: ``rtn W8A8``, ``weight_only W4A16 g128``."""
        a = getattr(self, "bits_a", None)
        return f"{self.name} W{self.bits_w}A{a if a is not None else 16}"

    # ------------------------------------------------------------------------------------ JSON

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"method": self.name}
        for f in fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, d: Any, ignore: tuple[str, ...] = ()) -> MethodConfig:
        """Rebuild from JSON: every key must be a field (``method`` must be this config's name; keys in
        ``ignore`` are dropped when the class lacks them — older maps stored every method's fields),
        every value of the field's type; then the same validation as construction."""
        if not isinstance(d, dict):
            raise InputError(f"expected an object, got {type(d).__name__}")
        d = dict(d)
        stored = d.pop("method", cls.name)
        if stored != cls.name:
            raise InputError(f"method: {stored!r} is not {cls.name!r}")
        by_name = {f.name: f for f in fields(cls)}
        kw: dict[str, Any] = {}
        for key, value in d.items():
            if key not in by_name:
                const = getattr(cls, key, None)
                fixed = isinstance(const, int | float | str) and not callable(const)
                if key in ignore and fixed and const != value:
                    raise InputError(f"{key}: {cls.name} is defined for {key} = {const} only, got {value!r}")
                if key in ignore:
                    continue  # a field this method does not have (or a constant it fixes, with its value)
                raise InputError(f"unknown field {key!r} for method {cls.name}")
            if not _type_ok(value, str(by_name[key].type)):
                raise InputError(f"{key}: {value!r} is not a valid {by_name[key].type}")
            kw[key] = tuple(value) if isinstance(value, list) else value
        return cls(**kw)

    # --------------------------------------------------------------------------------- CLI flags

    @classmethod
    def from_options(cls, **options: Any) -> MethodConfig:
        """Build from CLI options (None = not given). An option sets the field of its name, or the fields
        ``option_fields`` lists; a fixed constant of the method (llm.int8's 8 bits) must match; an option
        the method has no use for is refused, naming the flag. Field errors are reported under the flag."""
        names = set(cls.field_names())
        kw: dict[str, Any] = {}
        flag_of: dict[str, str] = {}
        for opt, value in options.items():
            if value is None:
                continue
            flag = "--" + opt.replace("_", "-")
            for field_name in cls.option_fields.get(opt, (opt,)):
                if field_name in names:
                    kw[field_name] = value
                    flag_of[field_name] = flag
                    continue
                const = getattr(cls, field_name, None)
                if const is None or isinstance(const, property):
                    raise InputError(f"{flag}: does not apply to --method {cls.name}")
                if const != value:
                    raise InputError(f"{flag}: {cls.name} is defined for {field_name} = {const} only, got {value!r}")
        try:
            return cls(**kw)
        except InputError as exc:
            msg = str(exc)
            field_name = msg.split(":", 1)[0]
            if field_name in flag_of:
                msg = f"{flag_of[field_name]}: {msg.split(':', 1)[1].strip()}"
            raise InputError(msg) from None
