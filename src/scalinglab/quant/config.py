"""One frozen config for every post-training quantization method, validated once at the edge.

``QuantConfig(method="llm.int8")`` is all most callers need; the defaults follow the papers
(threshold 6.0 from Dettmers et al. 2022, alpha 0.5 from Xiao et al. 2023). Bit widths 8, 6 and 4 are
stored in int8 containers: a b-bit symmetric code uses the range [-(2^(b-1)-1), 2^(b-1)-1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from scalinglab.errors import InputError

__all__ = ["METHODS", "BITS", "QuantConfig"]

METHODS = ("rtn", "llm.int8", "smoothquant", "outliertune")
BITS = (8, 6, 4)
OUTLIER_THRESHOLD = 6.0  # Dettmers et al. 2022, Sec. 3.2: |x| >= 6 marks an outlier feature dimension
SMOOTH_ALPHA = 0.5  # Xiao et al. 2023, Sec. 4: alpha = 0.5 suits OPT and most models


@dataclass(frozen=True)
class QuantConfig:
    """What to quantize and how.

    method:        rtn | llm.int8 | smoothquant | outliertune
    bits_w/bits_a: weight / activation bit width (8, 6 or 4); llm.int8 is 8/8 by definition
    w_granularity: "channel" (one scale per output row) or "tensor" (rtn only; others use channel)
    a_granularity: "token" (one scale per row of X) or "tensor"  (rtn, smoothquant)
    a_dynamic:     activation scales from the batch at run time (True) or from calibration (False)
    threshold:     LLM.int8 outlier magnitude
    alpha:         SmoothQuant migration strength
    skip:          module-name substrings left in floating point (the LM head by default)
    """

    method: str = "rtn"
    bits_w: int = 8
    bits_a: int = 8
    w_granularity: str = "channel"
    a_granularity: str = "token"
    a_dynamic: bool = True
    threshold: float = OUTLIER_THRESHOLD
    alpha: float = SMOOTH_ALPHA
    skip: tuple[str, ...] = ("lm_head",)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"--method: expected one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("bits_w", "bits_a"):
            if getattr(self, name) not in BITS:
                raise InputError(f"{name}: expected one of {BITS}, got {getattr(self, name)!r}")
        if self.method == "llm.int8" and (self.bits_w, self.bits_a) != (8, 8):
            raise InputError("--bits: llm.int8 is defined for 8-bit weights and activations only")
        if self.w_granularity not in ("channel", "tensor"):
            raise InputError(f"w_granularity: expected 'channel' or 'tensor', got {self.w_granularity!r}")
        if self.a_granularity not in ("token", "tensor"):
            raise InputError(f"a_granularity: expected 'token' or 'tensor', got {self.a_granularity!r}")
        if self.a_granularity == "token" and not self.a_dynamic:
            raise InputError("a_granularity='token' needs a_dynamic=True: per-token scales exist only at run time")
        if not self.threshold > 0:
            raise InputError(f"threshold: expected a positive magnitude, got {self.threshold!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha: expected a value in [0, 1], got {self.alpha!r}")

    @property
    def needs_calibration(self) -> bool:
        """SmoothQuant and OutlierTune need channel statistics; static activation scales do too."""
        return self.method in ("smoothquant", "outliertune") or not self.a_dynamic or self.method == "llm.int8"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skip"] = list(self.skip)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> QuantConfig:
        d = dict(d)
        d["skip"] = tuple(d.get("skip", ("lm_head",)))
        return cls(**d)
