"""``WeightOnlyLinear``: W8A16 / W6A16 / W4A16 — integer weights, float activations.

The weight is quantized group-wise (asymmetric, per (output row, group of ``group_size`` inputs),
kernels/wo_format.py) and stored as packed codes, float16 steps and uint8 zero points; activations stay
fp32 or bf16 ("A16") and are never quantized. ``forward`` runs the fused dequant-matmul of
kernels/wo_gemm.py: the float weight is never materialised on CPU. Layers with bf16 activations run on
the bf16 dot-product kernel of kernels/wo_bf16.py where the CPU has AVX-512 BF16 (every M, every width),
else W4 at decode shapes (M ≤ 16) on torch's own int4 kernel where its constraints hold (kernels/wo_torch.py);
the codes then live in that kernel's layout instead of ours (same bytes) and ours is restored for
``state_dict``, moves and casts. On other devices the weight is dequantized per call and multiplied by
``F.linear`` (the same function, without the memory saving during the call).

Buffers (all in ``state_dict``, so safetensors saves and loads them as they are)::

    codes   uint8  (N, K_pad/2) at 4 bits (two codes per byte), (N, K_pad) at 6 and 8 bits
    scales  float16 (N, G)      step s per (output row, group)
    zeros   uint8  (N, G)       zero point z per (output row, group)
    bias    (N,) or absent      float32 (kept through model.to(dtype) casts, as the steps are)

``spec()`` is a JSON-able dict (bits, group size, shapes, dtypes of each tensor) from which
:meth:`WeightOnlyLinear.from_spec` rebuilds the empty module and :func:`check_tensors` validates a
file's tensors before they are installed.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from scalinglab.errors import InputError
from scalinglab.kernels import wo_bf16 as B
from scalinglab.kernels import wo_format as F
from scalinglab.kernels import wo_torch as T
from scalinglab.kernels.wo_gemm import wo_matmul

__all__ = ["WeightOnlyLinear", "check_tensors", "FORMAT"]

FORMAT = "scalinglab.wo-asym-g.v1"  # codes/scales/zeros layout of kernels/wo_format.py
TORCH_INT4_MAX_M = 16  # torch's int4 kernel up to this many rows: its time grows ~linearly with M
# Byte codes (W8/W6) use the bf16 kernel at decode shapes only: at M = 64–256 it measured 0.6–0.86× bf16
# against 0.81–0.97× for bf16 tiles (AMD EPYC, one thread); above this M the layer tiles.
BYTE_BF16_MAX_M = 16
_MAX_DIM = 1 << 24  # no linear layer has more inputs or outputs: a spec beyond it is not ours


def _check_args(in_features, out_features, bits, group_size, where: str = "weight-only") -> None:
    for name, v in (("in_features", in_features), ("out_features", out_features)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= _MAX_DIM:
            raise InputError(f"{where}: {name} must be an integer in [1, {_MAX_DIM}], got {v!r}")
    if isinstance(bits, bool) or bits not in F.BITS:
        raise InputError(f"{where}: bits must be one of {', '.join(map(str, F.BITS))}, got {bits!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 0 or group_size == 1:
        raise InputError(f"{where}: group_size must be 0 (per output channel) or an integer ≥ 2, got {group_size!r}")


class WeightOnlyLinear(nn.Module):
    """``y = x · Ŵᵀ + b`` with Ŵ = (q − z)·s held as ``bits``-bit codes; empty until loaded or built
    by :meth:`from_float`. ``group_size = 0`` (or ≥ in_features): one group per output row.
    ``use_bf16_kernel = False`` / ``use_torch_int4 = False`` (class or instance) turn those paths off;
    with both off every call runs on the numba kernels."""

    use_bf16_kernel = True
    use_torch_int4 = True

    def __init__(self, in_features: int, out_features: int, bits: int = 4, group_size: int = 128,
                 bias: bool = True):
        super().__init__()
        _check_args(in_features, out_features, bits, group_size)
        if group_size >= in_features:
            group_size = 0  # one group per row; normalised so the spec (and memory) is bounded by the shape
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.group_size = bits, group_size
        self.g = F.effective_group(in_features, bits, group_size)
        n_groups = F.padded_in(in_features, bits, group_size) // self.g
        for name, (shape, dtype) in self._layout(bias).items():
            self.register_buffer(name, torch.zeros(shape, dtype=dtype))
        self.scales.fill_(1.0)
        if not bias:
            self.register_buffer("bias", None)
        assert self.scales.shape[1] == n_groups
        # while a bf16 kernel runs this layer: ("bf16", (codes, steps, zero points) in its layout) or
        # ("torch_int4", (codes in torch's layout, bf16 step/offset table)); the codes buffer is then empty
        self._runtime: tuple[str, tuple[torch.Tensor, ...]] | None = None

    def _layout(self, bias: bool) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        kp = F.padded_in(self.in_features, self.bits, self.group_size)
        n, n_groups = self.out_features, kp // self.g
        out = {"codes": ((n, kp // 2 if self.bits == 4 else kp), torch.uint8),
               "scales": ((n, n_groups), torch.float16),
               "zeros": ((n, n_groups), torch.uint8)}
        if bias:
            out["bias"] = ((n,), torch.float32)
        return out

    # ------------------------------------------------------------------------------------ building

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None = None, bits: int = 4,
                   group_size: int = 128) -> WeightOnlyLinear:
        """Quantize a float weight (out × in) and optional bias (out,)."""
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or not weight.is_floating_point():
            raise InputError(f"weight-only: weight must be a 2-D float tensor, got "
                             f"{getattr(weight, 'shape', type(weight).__name__)}")
        n, k = weight.shape
        if bias is not None and tuple(bias.shape) != (n,):
            raise InputError(f"weight-only: bias shape {tuple(bias.shape)} does not match {n} output features")
        if not bool(torch.isfinite(weight).all()) or (bias is not None and not bool(torch.isfinite(bias).all())):
            raise InputError("weight-only: the weight or bias holds NaN or inf; cannot quantize it")
        m = cls(k, n, bits, group_size, bias=bias is not None)
        try:
            q, s, z = F.quantize_groupwise(weight.detach().cpu(), bits, m.group_size)
        except ValueError as exc:
            raise InputError(f"weight-only: {exc}") from None
        m.codes = F.pack_codes(q, bits, m.g).to(weight.device)
        m.scales, m.zeros = s.to(weight.device), z.to(weight.device)
        if bias is not None:
            m.bias = bias.detach().to(torch.float32).clone()
        return m

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 4, group_size: int = 128) -> WeightOnlyLinear:
        return cls.from_float(linear.weight, linear.bias, bits, group_size)

    def spec(self) -> dict:
        """JSON-able description: enough to rebuild the module empty and to validate a file's tensors."""
        return {"format": FORMAT, "in_features": self.in_features, "out_features": self.out_features,
                "bits": self.bits, "group_size": self.group_size, "bias": self.bias is not None,
                "tensors": {name: {"shape": list(shape), "dtype": str(dtype).removeprefix("torch.")}
                            for name, (shape, dtype) in self._layout(self.bias is not None).items()}}

    @classmethod
    def from_spec(cls, spec: Mapping, where: str = "weight-only spec") -> WeightOnlyLinear:
        """An empty module for ``spec`` (as written by :meth:`spec`), checked field by field."""
        if not isinstance(spec, Mapping):
            raise InputError(f"{where}: expected a mapping, got {type(spec).__name__}")
        if spec.get("format") != FORMAT:
            raise InputError(f"{where}: format must be {FORMAT!r}, got {spec.get('format')!r}")
        for key in ("in_features", "out_features", "bits", "group_size", "bias"):
            if key not in spec:
                raise InputError(f"{where}: missing field {key!r}")
        if not isinstance(spec["bias"], bool):
            raise InputError(f"{where}: bias must be true or false, got {spec['bias']!r}")
        _check_args(spec["in_features"], spec["out_features"], spec["bits"], spec["group_size"], where)
        m = cls(spec["in_features"], spec["out_features"], spec["bits"], spec["group_size"], spec["bias"])
        if "tensors" in spec and spec["tensors"] != m.spec()["tensors"]:
            raise InputError(f"{where}: tensor shapes/dtypes {spec['tensors']} do not match the "
                             f"{m.bits}-bit group-{m.group_size} layout {m.spec()['tensors']}")
        return m

    # ------------------------------------------------------------------------------------ inspecting

    def weight_bytes(self) -> int:
        """Bytes of the stored format (codes, scales, zero points, bias), measured from the tensors held
        (the codes in whichever layout holds them now: both have the same size)."""
        held = sum(b.numel() * b.element_size() for b in self.buffers())
        if self._runtime is not None:
            held += self._runtime[1][0].numel()
        return held

    def runtime_bytes(self) -> int:
        """Bytes of run-time tables beyond the stored format while a bf16 kernel runs this layer, else 0:
        the regrouped float16 steps and uint8 zero points of kernels/wo_bf16.py (3 bytes per group), or
        torch's int4 kernel's bf16 step/offset table (4 bytes per group)."""
        if self._runtime is None:
            return 0
        return sum(t.numel() * t.element_size() for t in self._runtime[1][1:])

    def packed_codes(self) -> torch.Tensor:
        """The codes in the stored layout (kernels/wo_format.py), wherever they are kept now."""
        if self._runtime is None:
            return self.codes
        kind, tensors = self._runtime
        if kind == "bf16":
            return B.from_layout(*tensors, self.bits, self.g)[0]
        return T.from_torch_layout(tensors[0], self.g)

    def _to_runtime(self, kind: str) -> tuple[torch.Tensor, ...]:
        """Switch the codes to ``kind``'s layout (the only copy while it runs) and return its tensors."""
        if self._runtime is not None and self._runtime[0] != kind:
            self._restore_codes()
        if self._runtime is None:
            if kind == "bf16":
                tensors = B.to_layout(self.codes, self.scales, self.zeros, self.bits, self.g)
            else:
                tensors = (T.to_torch_layout(self.codes, self.g),
                           T.scales_and_zeros(self.scales, self.zeros, torch.bfloat16))
            self._runtime = (kind, tensors)
            self.codes = torch.empty(0, dtype=torch.uint8)
        return self._runtime[1]

    def _restore_codes(self) -> None:
        if self._runtime is not None:
            self.codes = self.packed_codes()
            self._runtime = None

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._runtime is not None:
            destination[prefix + "codes"] = self.packed_codes()

    def _load_from_state_dict(self, *args, **kwargs):
        if self._runtime is not None:
            self._runtime = None
            shape, dtype = self._layout(False)["codes"]
            self.codes = torch.zeros(shape, dtype=dtype)
        super()._load_from_state_dict(*args, **kwargs)

    def dequantize(self) -> torch.Tensor:
        """Ŵ as float32 (out × in): the plain reference (materialises the weight)."""
        return F.dequantize_groupwise(self.packed_codes().cpu(), self.scales.cpu(), self.zeros.cpu(), self.bits,
                                      self.g, self.in_features).to(self.scales.device)

    def extra_repr(self) -> str:
        gs = "per-channel" if self.group_size == 0 else f"group={self.group_size}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, W{self.bits}A16, {gs}, "
                f"bias={self.bias is not None}")

    # ------------------------------------------------------------------------------------ running

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected input (..., {self.in_features}), got {tuple(x.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if x2.device.type != "cpu":
            w = self.dequantize().to(x.dtype)
            b = None if self.bias is None else self.bias.to(x.dtype)
            y = torch.nn.functional.linear(x2, w, b)
        elif (x2.dtype == torch.bfloat16 and self.use_bf16_kernel and (self.bits == 4 or x2.shape[0] <= BYTE_BF16_MAX_M)
              and B.eligible(self.bits, self.out_features)):
            y = B.bf16_mm(x2, *self._to_runtime("bf16"), self.g, self.bias)
        elif x2.dtype == torch.bfloat16 and 0 < x2.shape[0] <= TORCH_INT4_MAX_M and self._torch_eligible():
            packed, sz = self._to_runtime("torch_int4")
            y = T.int4_mm(x2.contiguous(), packed, self.g, sz)
            if self.bias is not None:
                y = y + self.bias.to(torch.bfloat16)
        else:
            self._restore_codes()
            y = wo_matmul(x2, self.codes, self.scales, self.zeros, self.bias, self.bits, self.g)
        return y.reshape(*lead, self.out_features)

    def _torch_eligible(self) -> bool:
        return self.use_torch_int4 and T.eligible(self.bits, self.g, self.in_features, self.out_features,
                                                  F.padded_in(self.in_features, self.bits, self.group_size))

    def _apply(self, fn, *args, **kwargs):
        self._restore_codes()
        # model.to(torch.bfloat16) / .half() must not recast the stored format (bf16 steps would lose 3
        # bits each): hide the float buffers as their integer bit patterns while moves and casts run.
        self.scales = self.scales.view(torch.int16)
        if self.bias is not None:
            self.bias = self.bias.view(torch.int32)
        try:
            super()._apply(fn, *args, **kwargs)
        finally:
            self.scales = self.scales.view(torch.float16)
            if self.bias is not None:
                self.bias = self.bias.view(torch.float32)
        return self


def check_tensors(spec: Mapping, tensors: Mapping[str, torch.Tensor], where: str = "weights") -> None:
    """Validate a file's tensors for one module (local names: codes, scales, zeros[, bias]) against its
    spec before installing them: names, shapes, dtypes, code and zero-point ranges, finite positive
    steps. Raises InputError naming ``where`` and the tensor."""
    expected = WeightOnlyLinear.from_spec(spec, where).spec()["tensors"]
    extra = sorted(set(tensors) - set(expected))
    missing = sorted(set(expected) - set(tensors))
    if missing or extra:
        raise InputError(f"{where}: tensors missing {missing} / unexpected {extra} for a weight-only layer")
    for name, want in expected.items():
        t = tensors[name]
        if list(t.shape) != want["shape"] or str(t.dtype).removeprefix("torch.") != want["dtype"]:
            raise InputError(f"{where}: {name} is {str(t.dtype).removeprefix('torch.')} {list(t.shape)}, "
                             f"expected {want['dtype']} {want['shape']}")
    top = 2 ** spec["bits"] - 1
    if spec["bits"] == 6 and tensors["codes"].numel() and int(tensors["codes"].max()) > top:
        raise InputError(f"{where}: codes exceed {top}, the largest {spec['bits']}-bit code")
    if tensors["zeros"].numel() and int(tensors["zeros"].max()) > top:
        raise InputError(f"{where}: zero points exceed {top}, the largest {spec['bits']}-bit code")
    s = tensors["scales"]
    if not bool(torch.isfinite(s).all()) or not bool((s > 0).all()):
        raise InputError(f"{where}: scales must be finite and positive")
    if "bias" in tensors and not bool(torch.isfinite(tensors["bias"]).all()):
        raise InputError(f"{where}: bias holds NaN or inf")
