"""``QuantLinear``: a linear layer that holds integer weights and runs int8 × int8 → int32.

It replaces ``nn.Linear`` (and GPT-2's ``Conv1D``) after quantization; the float weights are gone, only
int8 codes (stored transposed, in × out, the layout ``torch._int_mm`` reads fastest), one float32
scale per output channel and the bias remain. How the activations are quantized is the ``act`` mode:

- ``token``:  dynamic, one absmax scale per row of X (per token) — RTN, SmoothQuant
- ``tensor``: dynamic, one absmax scale for the whole batch — RTN per-tensor
- ``static``: calibrated per-channel shift ``z`` and step ``Δ`` with a saturating clamp; the product is
  rescaled by one constant ``act_scale`` (RTN static: the tensor scale; OutlierTune: 1, its Δ_j being
  already folded into the weight columns)
- ``llm.int8``: dynamic per-token with the outlier-column decomposition (kernels/int8_matmul.py)

Narrower bit widths (6, 4) use the same int8 containers with a smaller ``qmax``.

Which kernels run the product is the machine's choice, asked once from hw/ (``int8_plan``), per batch
bucket (one token, a few rows, many rows — decode and prefill differ):

- ``int_mm``:  numba row quantizer → ``torch._int_mm`` → numba dequant epilogue (VNNI / AMX CPUs);
- ``fbgemm``:  the same codes through fbgemm's prepacked int8 GEMM (kernels/int8_backends.py), fast on
  AVX2 as well; where fbgemm's AVX2 kernels would saturate, activations use 7-bit codes (qmax 63);
- ``gemv``:    one fused numba call per input — quantize, exact integer product reading the int8
  weights, epilogue (kernels/int8_gemv.py): for one token, where the weights' memory traffic is the
  cost and the other paths' fixed costs are not recovered;
- ``dequant``: no int8 GEMM: the same activation codes (as floats) through an fp32 GEMM against the
  dequantized weights W_q·s_w — the same quantized function, since products of integers are exact in
  float32. For CPUs where no int8 kernel beats fp32. The float weight copy is a run-time cache kept
  while the process-wide total stays under a budget (a quarter of the available memory, or
  ``SCALINGLAB_DEQUANT_CACHE_MB``); past it, weights are dequantized on every call (slower than fp32,
  but the 4× memory saving holds).

On the fbgemm path the prepacked matrix becomes the only copy of the int8 codes (``w_t`` is emptied, and
rebuilt exactly from the packed matrix for checkpoints and device moves), so weight memory stays at
one byte per weight — unless the same layer also runs a path that reads ``w_t`` (a plan with fbgemm for
batches and gemv for single tokens, as on AVX2): then ``w_t`` is rebuilt on that path's first call and
both copies are kept (2 bytes per weight).
"""

from __future__ import annotations

import os
import weakref

import torch
from torch import nn
from torch.nn.functional import linear as f_linear

from scalinglab.kernels import int8_backends as B
from scalinglab.kernels import int8_gemv as G
from scalinglab.kernels import int8_matmul as K
from scalinglab.kernels import int8_torch as KT
from scalinglab.kernels import llm_int8_kernels as L
from scalinglab.quant.config import OUTLIER_THRESHOLD
from scalinglab.quant.primitives import qmax_for_bits

__all__ = ["ACT_MODES", "QuantLinear"]

ACT_MODES = ("token", "tensor", "static", "llm.int8")
PATHS = ("int_mm", "fbgemm", "gemv", "dequant")


class QuantLinear(nn.Module):
    """y = dequant(X_q · W_qᵀ) + b, with the int8 product on the path hw/ chose for this machine.

    Construct empty (for loading a checkpoint) with the shapes, or with ``QuantLinear.from_parts``.
    """

    def __init__(self, in_features: int, out_features: int, act: str, bits_w: int = 8, bits_a: int = 8,
                 n_outlier_cols: int = 0, threshold: float = OUTLIER_THRESHOLD):
        super().__init__()
        if act not in ACT_MODES:
            raise ValueError(f"act must be one of {ACT_MODES}, got {act!r}")
        self.in_features, self.out_features = in_features, out_features
        self.act, self.bits_w, self.bits_a, self.threshold = act, bits_w, bits_a, float(threshold)
        self.register_buffer("w_t", torch.zeros(in_features, out_features, dtype=torch.int8))  # (K, N)
        self.register_buffer("w_scale", torch.ones(out_features))  # (N,)
        self.register_buffer("bias", torch.zeros(out_features))  # (N,)
        if act == "static":
            self.register_buffer("act_shift", torch.zeros(in_features))  # z_j
            self.register_buffer("act_inv_step", torch.ones(in_features))  # 1/Δ_j
            self.register_buffer("act_scale", torch.ones(1))
        if act == "llm.int8":
            self.register_buffer("col_slot", torch.full((in_features,), -1, dtype=torch.int32))
            self.register_buffer("outlier_w_t", torch.zeros(n_outlier_cols, out_features))  # (C, N)
        self._plan: tuple[tuple[str, ...], bool] | None = None  # (path per batch bucket, full_range), from hw/
        self._packed = None  # fbgemm's prepacked weight (then w_t is emptied)
        self._w_float: torch.Tensor | None = None  # dequant path: cached float weight (N × K)
        self._views: tuple | None = None  # gemv path: (tensors, their NumPy views)
        self._fast: tuple | None = None  # gemv path at one token: (w_t, kernel, its weight arguments)

    @classmethod
    def from_parts(cls, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None, act: str,
                   bits_w: int, bits_a: int, **act_params) -> QuantLinear:
        """Assemble from int8 weight codes ``w_q`` (N × K), per-output scales (N,) and the activation
        parameters of the mode (``act_shift``, ``act_inv_step``, ``act_scale`` for static;
        ``outlier_cols`` + ``outlier_w`` (N × C) and ``threshold`` for llm.int8)."""
        n, k = w_q.shape
        outlier_cols = act_params.get("outlier_cols")
        n_out = 0 if outlier_cols is None else int(outlier_cols.numel())
        m = cls(k, n, act, bits_w, bits_a, n_out, act_params.get("threshold", OUTLIER_THRESHOLD))
        m.w_t = w_q.t().contiguous()
        m.w_scale = w_scale.reshape(-1).float().contiguous().clone()
        if bias is not None:
            m.bias = bias.detach().float().clone()
        if act == "static":
            m.act_shift = act_params["act_shift"].float().contiguous().clone()
            m.act_inv_step = act_params["act_inv_step"].float().contiguous().clone()
            m.act_scale = torch.as_tensor(act_params["act_scale"], dtype=torch.float32).reshape(1).clone()
        if act == "llm.int8" and n_out:
            slot = torch.full((k,), -1, dtype=torch.int32)
            slot[outlier_cols] = torch.arange(n_out, dtype=torch.int32)
            m.col_slot = slot
            m.outlier_w_t = act_params["outlier_w"].t().float().contiguous().clone()
        return m

    @property
    def qmax_a(self) -> int:
        return qmax_for_bits(self.bits_a)

    def spec(self) -> dict:
        """What a checkpoint needs to rebuild this module empty (quant/io.py)."""
        n_out = self.outlier_w_t.shape[0] if self.act == "llm.int8" else 0
        return {"in_features": self.in_features, "out_features": self.out_features, "act": self.act,
                "bits_w": self.bits_w, "bits_a": self.bits_a, "n_outlier_cols": n_out, "threshold": self.threshold}

    # ----------------------------------------------------------------- which kernels run the product

    def set_path(self, path: str | tuple[str, ...] | None, full_range: bool = True) -> QuantLinear:
        """Pin the int8 path (one of PATHS, or one per batch bucket of hw/), or ``None`` to ask hw/ again."""
        from scalinglab.hw.dispatch import BUCKET_NAMES

        paths = (path,) * len(BUCKET_NAMES) if isinstance(path, str) else path
        if paths is not None and (len(paths) != len(BUCKET_NAMES) or not set(paths) <= set(PATHS)):
            raise ValueError(f"unknown int8 path {path!r}: expected one of {PATHS} or one per {BUCKET_NAMES}")
        self._restore_codes()
        self._plan = None if paths is None else (tuple(paths), bool(full_range))
        self._fast = None
        return self

    @property
    def path(self) -> str | None:
        """The path of the largest batches (``paths`` has one per batch bucket)."""
        return None if self._plan is None else self._plan[0][-1]

    @property
    def paths(self) -> tuple[str, ...] | None:
        return None if self._plan is None else self._plan[0]

    def _resolve(self, device: torch.device, m: int) -> tuple[str, bool]:
        from scalinglab.hw.dispatch import bucket

        if self._plan is None:
            from scalinglab.hw import int8_plan

            plan = int8_plan(device.type)
            self._plan = (plan.paths, plan.full_range)
        paths, full = self._plan
        path = paths[bucket(m)]
        if path == "fbgemm" and (device.type != "cpu" or self.in_features < 2):
            return "int_mm", True  # fbgemm is CPU-only, and its anchor row needs two columns
        return path, full

    def _has_plain_codes(self) -> bool:
        return self.w_t.shape[0] == self.in_features

    def codes(self) -> torch.Tensor:
        """The int8 weight codes (K × N), wherever they are kept."""
        return self.w_t if self._packed is None or self._has_plain_codes() else B.unpack_weight(self._packed)

    def _plain_codes(self) -> torch.Tensor:
        """``w_t`` for the paths that read it, rebuilt from fbgemm's packed copy if that was the only one."""
        if not self._has_plain_codes():
            self.w_t = B.unpack_weight(self._packed)
        return self.w_t

    def _packed_weight(self):
        if self._packed is None:
            self._packed = B.pack_weight(self.w_t, self.w_scale)
            if not {"int_mm", "gemv"} & set(self._plan[0] if self._plan else ()):
                self.w_t = torch.empty(0, self.out_features, dtype=torch.int8)  # the packed copy is the only one
        return self._packed

    def _restore_codes(self) -> None:
        if self._packed is not None:
            self._plain_codes()
            self._packed = None
        self._w_float = None
        self._views = self._fast = None

    def packed_nbytes(self) -> int:
        """Bytes of the int8 weights held outside the buffers: fbgemm's packed codes and int32 column
        offsets (its block padding not counted); 0 while ``w_t`` holds them alone."""
        return 0 if self._packed is None else self.in_features * self.out_features + 4 * self.out_features

    def cache_nbytes(self) -> int:
        """Bytes of the dequant path's cached float weight (a run-time cache, not part of the model)."""
        return 0 if self._w_float is None else self._w_float.numel() * self._w_float.element_size()

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._packed is not None and not self._has_plain_codes():
            destination[prefix + "w_t"] = self.codes()
        key = prefix + "w_t"  # on CUDA w_t may be K-contiguous (kernels/int8_torch.py); files hold it row-major
        if key in destination and not destination[key].is_contiguous():
            destination[key] = destination[key].contiguous()

    def _load_from_state_dict(self, *args, **kwargs):
        if self._packed is not None:
            self.w_t = torch.zeros(self.in_features, self.out_features, dtype=torch.int8)
            self._packed = None
        self._w_float = None
        self._views = self._fast = None
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._restore_codes()  # moves and casts see the plain int8 buffer
        return super()._apply(fn, *args, **kwargs)

    # ----------------------------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = self._fast  # one float32 token on the gemv path: straight to the compiled kernel
        if (fast is not None and x.numel() == self.in_features and x.dtype is torch.float32 and not x.is_cuda
                and x.is_contiguous() and fast[0] is self.w_t):
            y = torch.from_numpy(fast[1](x.detach().numpy().reshape(1, -1), *fast[2]))
            return y.view(*x.shape[:-1], self.out_features)
        with torch.no_grad():
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        lead, dtype = x.shape[:-1], x.dtype
        x2 = x.reshape(-1, self.in_features)
        if x2.shape[0] == 0:
            return x.new_zeros(*lead, self.out_features)
        if x2.device.type != "cpu":  # CUDA: the same math in torch ops (the numba kernels are host-only)
            y = KT.quant_linear(self, x2)
        else:
            path, full = self._resolve(x2.device, x2.shape[0])
            if path == "int_mm":
                y = self._forward_int_mm(x2)
            elif path == "gemv":
                y = self._forward_gemv(x2)
            else:
                y = self._forward_codes(x2, path, full)
        return y.to(dtype).reshape(*lead, self.out_features)

    def _static_params(self, x2: torch.Tensor, qa: int):
        """(shift, 1/step, product scale) of the ``tensor`` / ``static`` modes at activation range ``qa``."""
        if self.act == "tensor":
            amax = float(x2.detach().abs().amax())
            s = amax / qa if amax > 0 else 1.0
            return (torch.zeros(self.in_features), torch.full((self.in_features,), 1.0 / s),
                    torch.tensor([s], dtype=torch.float32))
        r = qa / self.qmax_a  # < 1 only when fbgemm needs 7-bit codes: a coarser step, same saturation point
        return self.act_shift, self.act_inv_step * r, self.act_scale / r

    def _forward_gemv(self, x2: torch.Tensor) -> torch.Tensor:
        """One fused call: the mode's activation codes, the exact integer product, the epilogue. The
        NumPy views of the weights are kept between calls, and where single tokens take this path
        ``forward`` calls the kernel directly (at one token each µs of Python overhead shows)."""
        if self.in_features > G.MAX_K:  # the int32 accumulator could overflow: the same function in fp32
            return self._forward_codes(x2, "dequant", True)
        self._plain_codes()
        tensors = (self.w_t, self.w_scale, self.bias) + ((self.col_slot, self.outlier_w_t) if self.act == "llm.int8" else ())
        if self._views is None or any(a is not b for a, b in zip(self._views[0], tensors, strict=True)):
            self._views = (tensors, G.weight_views(*tensors))
        views = self._views[1]
        if self.act in ("token", "llm.int8") and self._plan is not None and self._plan[0][0] == "gemv":
            kernel, args = G.fused_kernel(self.act, views, self.qmax_a, self.threshold)
            self._fast = (self.w_t, kernel, args)
        if self.act == "token":
            return G.w8a8_gemv(x2, *views, self.qmax_a)
        if self.act == "llm.int8":
            return G.llm_int8_gemv(x2, *views[:3], self.threshold, *views[3:])
        shift, inv, scale = self._static_params(x2, self.qmax_a)
        q = K.quantize_channels(x2, shift, inv, self.qmax_a, out=torch.empty(x2.shape[0], self.in_features))
        return G.codes_gemv(q, scale, *views)

    def _forward_int_mm(self, x2: torch.Tensor) -> torch.Tensor:
        w_t = self._plain_codes()
        if self.act == "token":
            return K.w8a8_matmul(x2, w_t, self.w_scale, self.bias, self.qmax_a)
        if self.act == "llm.int8":
            return K.llm_int8_matmul(x2, w_t, self.w_scale, self.bias, self.threshold, self.col_slot,
                                     self.outlier_w_t)
        shift, inv, scale = self._static_params(x2, self.qmax_a)
        xq = K.quantize_channels(x2, shift, inv, self.qmax_a)
        return K.dequantize_epilogue(K.int_mm(xq, w_t), scale, self.w_scale, self.bias, in_place=True)

    def _forward_codes(self, x2: torch.Tensor, path: str, full_range: bool) -> torch.Tensor:
        """The fbgemm and dequant paths: activation codes as floats (M × K, plus fbgemm's anchor row),
        their product with W_q scaled by s_w — fbgemm's int8 GEMM, or an fp32 GEMM against the
        dequantized weights — then the row scales and bias in one numba pass."""
        x2 = x2.detach().to(torch.float32).contiguous()
        m = x2.shape[0]
        codes = torch.empty(m + 1, self.in_features)  # (M+1, K): the codes and fbgemm's anchor row
        full_range = full_range or path == "dequant"
        cols = None
        if self.act == "llm.int8":
            qa = B.act_qmax(127, full_range)
            _, sx, cols, kept = L.scan_quantize(x2, self.threshold, qa, self.col_slot, out=codes[:m])
        elif self.act == "token":
            qa = B.act_qmax(self.qmax_a, full_range)
            _, sx = K.quantize_rows(x2, qa, out=codes[:m])
        else:
            qa = B.act_qmax(self.qmax_a, full_range)
            shift, inv, sx = self._static_params(x2, qa)
            K.quantize_channels(x2, shift, inv, qa, out=codes[:m])
        if path == "fbgemm":
            B.anchor_(codes, qa)
            y = B.fbgemm_product(codes, self._packed_weight(), qa)
        else:
            y = f_linear(codes[:m], self._float_weight())  # integers × (W_q·s_w): exact products in fp32
        if cols is not None and kept:
            return L.rescale_outliers_(y, sx, self.bias, x2, cols, self.col_slot, self.outlier_w_t)
        y = B.rescale_rows_(y, sx, self.bias)
        if cols is not None:  # an outlier dim calibration never saw: the general path
            outlier = torch.zeros(self.in_features, dtype=torch.bool)
            outlier[cols] = True
            K.add_outlier_product_(y, x2, outlier, self.col_slot, self.outlier_w_t, self.codes, self.w_scale)
        return y

    def _float_weight(self) -> torch.Tensor:
        """W_q·s_w (N × K), cached while the process-wide budget allows."""
        if self._w_float is not None:
            return self._w_float
        w = (self.codes().t().float() * self.w_scale[:, None]).contiguous()
        if _DequantCache.reserve(self, w.numel() * w.element_size()):
            self._w_float = w
        return w

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, act={self.act}, "
                f"W{self.bits_w}A{self.bits_a}" + (f", path={self.path}" if self.path else ""))


class _DequantCache:
    """Process-wide budget for the dequant path's cached float weights (released when a module dies)."""

    used = 0
    budget: int | None = None

    @classmethod
    def reserve(cls, owner: nn.Module, nbytes: int) -> bool:
        if cls.budget is None:
            cls.budget = _default_budget()
        if cls.used + nbytes > cls.budget:
            return False
        cls.used += nbytes
        weakref.finalize(owner, cls._release, nbytes)
        return True

    @classmethod
    def _release(cls, nbytes: int) -> None:
        cls.used -= nbytes


def _default_budget() -> int:
    env = os.environ.get("SCALINGLAB_DEQUANT_CACHE_MB")
    if env is not None:
        try:
            return max(0, int(float(env) * 2**20))
        except ValueError:
            pass
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 // 4
    except OSError:
        pass
    return 1 << 30
