"""Weight-only linears with bf16 activations on CPUs with AVX-512 BF16: a compiled kernel on the bf16
dot-product unit (W4A16, and W8A16 / W6A16 from byte codes).

Why a kernel of our own. bf16 ``F.linear`` on such a CPU runs on ``vdpbf16ps`` (two bf16 products
per fp32 lane per instruction): 200–290 GFLOP/s at decode shapes (M = 8–16) on one core, against an
fp32 FMA peak of ~100. A weight-only kernel whose arithmetic is fp32 — numba's loops, or torch's CPU int4
kernel at 143–169 GFLOP/s — cannot keep up once M grows past a few rows, however few bytes it reads.
numba has no bf16 type, so this kernel is written in LLVM IR (generated here, compiled once per process
by llvmlite, which numba ships) and feeds the codes straight into the bf16 dot-product instruction.

Codes to bf16 without arithmetic. A bf16 number with exponent byte 130 covers [8, 16) in steps of
1/16; its 7 mantissa bits set to ``c << 3`` give exactly ``8 + c/2`` for a 4-bit code c. So a code
becomes a bf16 operand by a shift, a mask and an OR with ``0x4100``:
``w' = 8 + c/2`` ⇒ ``c = 2w' − 16``, and with Ŵ = (c − z)·s per (row, group) (kernels/wo_format.py)

    Σ_k x_k Ŵ_k = s · (2 Σ_k x_k w'_k − (16 + z) · Σ_k x_k)        (sums over one group)

The first sum runs on ``vdpbf16ps`` (bf16 products are exact in fp32; accumulation in fp32), the
second is the group's input sum (computed once per row and group), and the step s and zero point z
enter once per group, in fp32. Nothing is rounded to bf16 but the activations (given) and the output.

Byte codes (8 bits, and 6-bit codes, which are stored one per byte) do not fit that trick (bf16 has 7
mantissa bits), but every integer 0…255 is exact in bf16 (8 significant bits), so they are converted
(zero-extend, int → fp32 → bf16, all exact) and Σ_k x_k Ŵ_k = s · (Σ_k x_k q_k − z · Σ_k x_k). The
conversion costs about what the 4-bit shift/mask/OR does, yet at large M byte codes measured 0.6–0.75×
bf16 ``F.linear`` against 0.9–1.0× for bf16 tiles, so layers use the kernel for them up to M = 16 only
(quant/weight_only.py).

Layout (same bytes as the stored format, rearranged while the kernel runs the layer): output rows in
tiles of 16 (one fp32 lane each); for tile t, group j and input pair p, 16 bytes, byte n holding the
codes of inputs 2p (low nibble) and 2p + 1 (high nibble) of row 16t + n — one byte vector becomes one
``<32 x bf16>`` operand whose lane n is the pair (k, k + 1) of row n, multiplied by the broadcast
activation pair (x_k, x_{k+1}). Byte codes: 32 bytes per (tile, group, pair), bytes 2n and 2n + 1 the
codes of inputs 2p and 2p + 1 of row n. Steps (float16) and zero points (uint8) are regrouped the same way,
16 per (tile, group). The micro-kernel keeps 8 rows of x × 3 tiles (24 fp32 accumulators) in registers,
so each unpacked weight vector feeds 8 dot products and each broadcast activation pair 3; the 8-row
chunks of x loop inside the tile loop, so a tile's codes are read from memory once per call. Measured on AMD EPYC (Zen 5), one thread, W4:
1.3–2.2× bf16 ``F.linear`` at M = 16, 2.0–5.7× at M = 1 (benchmarks/weight_only.py prints the current
figures).

Requirements: out_features a multiple of 16, a CPU with AVX-512 BF16 (and llvmlite able to target it).
:func:`available` also runs the compiled code once per code width against the plain reference.
"""

from __future__ import annotations

import functools
import os

import numba
import numpy as np
import torch
from numba import types
from numba.extending import intrinsic

from scalinglab.kernels.wo_format import pack_codes, unpack_codes

__all__ = ["LANES", "ROWS", "TILES", "BITS", "available", "eligible", "to_layout", "from_layout", "bf16_mm",
           "ir_module"]

LANES = 16  # output rows per tile: fp32 lanes of one zmm register
ROWS = 8  # rows of x per micro-kernel chunk
TILES = 3  # tiles per micro-kernel step: ROWS × TILES = 24 accumulators (+ operands) in 32 registers
BITS = (4, 6, 8)  # 6-bit codes are stored one per byte and run on the byte-code (8-bit) kernel
_NARGS = 14  # i64 arguments of every generated function (pointers passed as integers)
_ARGS = ("t0", "t1", "wt", "st", "zt", "x", "ldx", "xs", "G", "H", "y", "ldy", "nch", "bias")
_PTRS = ("wt", "st", "zt", "x", "xs", "y", "bias")


def _width(bits: int) -> int:
    """Code container: 4 (packed nibbles) or 8 (one byte per code, for 6 and 8 bits)."""
    return 4 if bits == 4 else 8


# ----------------------------------------------------------------------------------------- IR generation

def _unpack(p: str, u: int, width: int) -> str:
    """IR: the codes of tile u at pair %{p}p → the 32-bf16 operand %{p}wv{u}, lane n = the weights of inputs
    2p and 2p + 1 of row n (as 8 + q/2 for 4-bit codes, as q for byte codes)."""
    if width == 8:  # bytes 2n, 2n + 1: codes 2p, 2p + 1 of row n, converted exactly
        return f"""  %{p}wi{u} = add i64 %{p}wb{u}, %{p}p
  %{p}wp{u} = getelementptr <32 x i8>, ptr %wt, i64 %{p}wi{u}
  %{p}bl{u} = load <32 x i8>, ptr %{p}wp{u}, align 1
  %{p}wv{u} = uitofp <32 x i8> %{p}bl{u} to <32 x bfloat>"""
    # byte n: code 2p in bits 0–3, code 2p + 1 in bits 4–7 → lane (0x4100 | a << 3, 0x4100 | b << 3)
    return f"""  %{p}wi{u} = add i64 %{p}wb{u}, %{p}p
  %{p}wp{u} = getelementptr <16 x i8>, ptr %wt, i64 %{p}wi{u}
  %{p}bl{u} = load <16 x i8>, ptr %{p}wp{u}, align 1
  %{p}b{u} = zext <16 x i8> %{p}bl{u} to <16 x i32>
  %{p}lo0{u} = shl <16 x i32> %{p}b{u}, splat (i32 3)
  %{p}lo{u} = and <16 x i32> %{p}lo0{u}, splat (i32 120)
  %{p}hi0{u} = shl <16 x i32> %{p}b{u}, splat (i32 15)
  %{p}hi{u} = and <16 x i32> %{p}hi0{u}, splat (i32 7864320)
  %{p}w0{u} = or <16 x i32> %{p}lo{u}, %{p}hi{u}
  %{p}w1{u} = or <16 x i32> %{p}w0{u}, splat (i32 1090535680)
  %{p}wv{u} = bitcast <16 x i32> %{p}w1{u} to <32 x bfloat>"""


def _broadcast(p: str, r: int) -> str:
    """IR: the activation pair (x[r, 2k], x[r, 2k + 1]) at pair %{p}xk, one i32, broadcast to the 32-bf16
    operand %{p}xb{r}."""
    return f"""  %{p}xr{r} = mul i64 %ldx, {r}
  %{p}xq{r} = add i64 %{p}xr{r}, %{p}xk
  %{p}xp{r} = getelementptr i32, ptr %x{p}, i64 %{p}xq{r}
  %{p}xv{r} = load i32, ptr %{p}xp{r}, align 4
  %{p}xi{r} = insertelement <16 x i32> poison, i32 %{p}xv{r}, i64 0
  %{p}xs{r} = shufflevector <16 x i32> %{p}xi{r}, <16 x i32> poison, <16 x i32> zeroinitializer
  %{p}xb{r} = bitcast <16 x i32> %{p}xs{r} to <32 x bfloat>"""


def _accumulators(p: str, name: str, entry: str, update: str, back: str, rows: int, tiles: int) -> str:
    """IR: one fp32 accumulator per (row, tile), zero when the loop is entered from block ``entry``, the
    value ``update`` when it loops back from ``back``."""
    return "\n".join(f"  %{p}{name}{r}_{u} = phi <16 x float> [zeroinitializer, %{p}{entry}], "
                     f"[%{p}{update}{r}_{u}, %{p}{back}]" for r in range(rows) for u in range(tiles))


def _chunk(rows: int, tiles: int, p: str, nxt: str, width: int) -> str:
    """IR for ``rows`` rows of x against ``tiles`` tiles starting at %t: all groups, then bias, bf16
    rounding and the stores; jumps to ``nxt``. Names carry the prefix ``p`` (one function holds two)."""
    rr, uu = range(rows), range(tiles)
    out: list[str] = []
    e = out.append
    e(f"{p}_pre:\n  br label %{p}_grp")
    e(f"{p}_grp:\n  %{p}j = phi i64 [0, %{p}_pre], [%{p}jn, %{p}_ge]")
    e(_accumulators(p, "tot", "_pre", "totn", "_ge", rows, tiles))
    for u in uu:
        e(f"  %{p}tgj{u} = add i64 %tg{u}, %{p}j\n  %{p}wb{u} = mul i64 %{p}tgj{u}, %H")
    e(f"  %{p}xj = mul i64 %{p}j, %H\n  br label %{p}_pair")
    e(f"{p}_pair:\n  %{p}p = phi i64 [0, %{p}_grp], [%{p}pn, %{p}_pair]")
    e(_accumulators(p, "acc", "_grp", "accn", "_pair", rows, tiles))
    for u in uu:
        e(_unpack(p, u, width))
    e(f"  %{p}xk = add i64 %{p}xj, %{p}p")
    for r in rr:
        e(_broadcast(p, r))
        for u in uu:
            e(f"  %{p}accn{r}_{u} = call <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float> "
              f"%{p}acc{r}_{u}, <32 x bfloat> %{p}xb{r}, <32 x bfloat> %{p}wv{u})")
    e(f"  %{p}pn = add i64 %{p}p, 1\n  %{p}pc = icmp ult i64 %{p}pn, %H\n"
      f"  br i1 %{p}pc, label %{p}_pair, label %{p}_ge")
    e(f"{p}_ge:")
    # Σ x·(q − z) = factor·acc − (offset + z)·Σx: 4-bit operands are 8 + q/2, byte codes are q itself
    factor, offset = (2.0, 16.0) if width == 4 else (1.0, 0.0)
    for u in uu:  # step s (float16) and offset + z (uint8) of the 16 rows of tile u in this group
        e(f"""  %{p}sp{u} = getelementptr <16 x half>, ptr %st, i64 %{p}tgj{u}
  %{p}sh{u} = load <16 x half>, ptr %{p}sp{u}, align 2
  %{p}sv{u} = fpext <16 x half> %{p}sh{u} to <16 x float>
  %{p}zp{u} = getelementptr <16 x i8>, ptr %zt, i64 %{p}tgj{u}
  %{p}zb{u} = load <16 x i8>, ptr %{p}zp{u}, align 1
  %{p}zf{u} = uitofp <16 x i8> %{p}zb{u} to <16 x float>
  %{p}zv{u} = fadd <16 x float> %{p}zf{u}, splat (float {offset})""")
    for r in rr:
        e(f"""  %{p}sr{r} = mul i64 %G, {r}
  %{p}sq{r} = add i64 %{p}sr{r}, %{p}j
  %{p}sxp{r} = getelementptr float, ptr %xs{p}, i64 %{p}sq{r}
  %{p}sx{r} = load float, ptr %{p}sxp{r}, align 4
  %{p}si{r} = insertelement <16 x float> poison, float %{p}sx{r}, i64 0
  %{p}ss{r} = shufflevector <16 x float> %{p}si{r}, <16 x float> poison, <16 x i32> zeroinitializer""")
        for u in uu:  # tot += s · (factor·acc − (offset + z)·Σx)
            e(f"""  %{p}a2{r}_{u} = fmul <16 x float> %{p}accn{r}_{u}, splat (float {factor})
  %{p}c{r}_{u} = fmul <16 x float> %{p}zv{u}, %{p}ss{r}
  %{p}d{r}_{u} = fsub <16 x float> %{p}a2{r}_{u}, %{p}c{r}_{u}
  %{p}totn{r}_{u} = call <16 x float> @llvm.fma.v16f32(<16 x float> %{p}sv{u}, <16 x float> %{p}d{r}_{u}, \
<16 x float> %{p}tot{r}_{u})""")
    e(f"  %{p}jn = add i64 %{p}j, 1\n  %{p}jc = icmp ult i64 %{p}jn, %G\n  br i1 %{p}jc, label %{p}_grp, label %{p}_te")
    e(f"{p}_te:")
    for u in uu:
        e(f"  %{p}bp{u} = getelementptr float, ptr %bias, i64 %to{u}\n"
          f"  %{p}bv{u} = load <16 x float>, ptr %{p}bp{u}, align 4")
    for r in rr:
        for u in uu:
            e(f"""  %{p}o{r}_{u} = fadd <16 x float> %{p}totn{r}_{u}, %{p}bv{u}
  %{p}h{r}_{u} = fptrunc <16 x float> %{p}o{r}_{u} to <16 x bfloat>
  %{p}yr{r}_{u} = mul i64 %ldy, {r}
  %{p}yq{r}_{u} = add i64 %{p}yr{r}_{u}, %to{u}
  %{p}yp{r}_{u} = getelementptr bfloat, ptr %y{p}, i64 %{p}yq{r}_{u}
  store <16 x bfloat> %{p}h{r}_{u}, ptr %{p}yp{r}_{u}, align 2""")
    e(f"  br label %{nxt}")
    return "\n".join(out)


def _function(name: str, rest: int, tiles: int, width: int) -> str:
    """``name(t0, t1, …)``: for tiles t0, t0 + ``tiles``, … < t1: ``nch`` chunks of ROWS rows of x, then one
    chunk of ``rest`` rows (none when 0). All arguments are i64; pointers arrive as integers."""
    params = ", ".join(f"i64 %{a}_i" if a in _PTRS else f"i64 %{a}" for a in _ARGS)
    casts = "".join(f"  %{a} = inttoptr i64 %{a}_i to ptr\n" for a in _PTRS)
    tile = "".join(f"  %tu{u} = add i64 %t, {u}\n  %tg{u} = mul i64 %tu{u}, %G\n  %to{u} = mul i64 %tu{u}, {LANES}\n"
                   for u in range(tiles))

    def rows_at(p: str, first: str) -> str:  # pointers to row ``first`` of x, 16·x, Σx and y for chunk p
        return (f"  %{p}ox = mul i64 {first}, %ldx\n  %x{p} = getelementptr i32, ptr %x, i64 %{p}ox\n"
                f"  %{p}os = mul i64 {first}, %G\n  %xs{p} = getelementptr float, ptr %xs, i64 %{p}os\n"
                f"  %{p}oy = mul i64 {first}, %ldy\n  %y{p} = getelementptr bfloat, ptr %y, i64 %{p}oy\n")

    parts = [
        f"define void @{name}({params}) {{",
        f"entry:\n{casts}  br label %tile",
        f"tile:\n  %t = phi i64 [%t0, %entry], [%tn, %tile_end]\n{tile}"
        "  %hasch = icmp ugt i64 %nch, 0\n  br i1 %hasch, label %chunk, label %rest",
        f"chunk:\n  %c = phi i64 [0, %tile], [%cn, %A_next]\n  %cm = mul i64 %c, {ROWS}\n{rows_at('A', '%cm')}"
        "  br label %A_pre",
        _chunk(ROWS, tiles, "A", "A_next", width),
        "A_next:\n  %cn = add i64 %c, 1\n  %cc = icmp ult i64 %cn, %nch\n  br i1 %cc, label %chunk, label %rest",
        f"rest:\n  %rm = mul i64 %nch, {ROWS}\n{rows_at('B', '%rm')}  br label %{'B_pre' if rest else 'tile_end'}",
    ]
    if rest:
        parts.append(_chunk(rest, tiles, "B", "tile_end", width))
    parts.append(f"tile_end:\n  %tn = add i64 %t, {tiles}\n  %tc = icmp ult i64 %tn, %t1\n"
                 "  br i1 %tc, label %tile, label %exit\nexit:\n  ret void\n}")
    return "\n".join(parts)


def _name(width: int, rest: int, tiles: int) -> str:
    return f"w{width}bf16_r{rest}_t{tiles}"


def ir_module(width: int = 4) -> str:
    """The LLVM IR text of every variant for 4-bit (``width`` 4) or byte (8) codes: rest rows 0…ROWS−1 ×
    (TILES, 1) tiles per step."""
    head = ("declare <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float>, <32 x bfloat>, <32 x bfloat>)\n"
            "declare <16 x float> @llvm.fma.v16f32(<16 x float>, <16 x float>, <16 x float>)\n")
    return head + "\n".join(_function(_name(width, r, t), r, t, width) for t in (TILES, 1) for r in range(ROWS))


# ----------------------------------------------------------------------------------------- compiling

@functools.cache
def _compiled(width: int) -> tuple[object, dict[tuple[int, int], int]]:
    """Compile the IR of one code width for this CPU (once per process): the engine (kept alive) and each
    variant's address by (rest rows, tiles per step)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    mod = llvm.parse_assembly(ir_module(width))
    mod.verify()
    tm = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
    pb.getModulePassManager().run(mod, pb)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    return engine, {(r, t): engine.get_function_address(_name(width, r, t))
                    for t in (TILES, 1) for r in range(ROWS)}


def _host_has_bf16() -> bool:
    try:
        import llvmlite.binding as llvm

        return "+avx512bf16" in llvm.get_host_cpu_features().flatten().split(",")
    except (ImportError, RuntimeError):
        return False


@functools.cache
def available(bits: int = 4) -> bool:
    """The CPU (as this process may use it: capability caps such as ``ATEN_CPU_CAPABILITY=avx2`` count)
    has AVX-512 BF16, the kernel for ``bits``-bit codes compiles, and it matches the plain reference on a
    random layer."""
    if bits not in BITS or os.environ.get("SCALINGLAB_NO_BF16_KERNEL"):
        return False
    from scalinglab.hw.capabilities import detect

    if not detect().has("avx512_bf16") or not _host_has_bf16():
        return False
    try:
        _compiled(_width(bits))
    except (RuntimeError, ImportError, OSError):
        return False
    return _self_check(bits)


def _self_check(bits: int) -> bool:
    from scalinglab.kernels.wo_format import dequantize_groupwise, quantize_groupwise

    gen = torch.Generator().manual_seed(0)
    n, k, g = 48, 96, 32
    w = torch.randn(n, k, generator=gen)
    q, s, z = quantize_groupwise(w, bits, g)
    codes = pack_codes(q, bits, g)
    x = torch.randn(11, k, generator=gen).bfloat16()
    bias = torch.randn(n, generator=gen)
    ref = torch.nn.functional.linear(x.float(), dequantize_groupwise(codes, s, z, bits, g, k), bias)
    y = bf16_mm(x, *to_layout(codes, s, z, bits, g), g, bias).float()
    return bool(torch.allclose(y, ref, rtol=1e-2, atol=1e-2 * float(ref.abs().max())))


def eligible(bits: int, out_features: int) -> bool:
    return bits in BITS and out_features % LANES == 0 and available(bits)


# ----------------------------------------------------------------------------------------- layout

def to_layout(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, bits: int, g: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stored format (codes N × K_pad/2 at 4 bits, N × K_pad bytes at 6 and 8; steps and zero points N × G)
    → the kernel's: codes (T, G, g/2, 16) uint8 at 4 bits, (T, G, g/2, 16, 2) at 6 and 8; steps
    (T, G, 16) float16; zero points (T, G, 16) uint8; T = N/16."""
    q = unpack_codes(codes, bits, g)
    n, kp = q.shape
    t, n_groups, h = n // LANES, kp // g, g // 2
    qq = q.reshape(t, LANES, n_groups, h, 2)
    if _width(bits) == 4:
        wt = (qq[..., 0] | (qq[..., 1] << 4)).permute(0, 2, 3, 1).contiguous()
    else:
        wt = qq.permute(0, 2, 3, 1, 4).contiguous()
    st = scales.reshape(t, LANES, n_groups).permute(0, 2, 1).contiguous()
    zt = zeros.reshape(t, LANES, n_groups).permute(0, 2, 1).contiguous()
    return wt, st, zt


def from_layout(wt: torch.Tensor, st: torch.Tensor, zt: torch.Tensor, bits: int, g: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`to_layout`."""
    t, n_groups, h = wt.shape[:3]
    n = t * LANES
    if _width(bits) == 4:
        pairs = wt.permute(0, 3, 1, 2)  # (T, 16, G, h)
        q = torch.stack([pairs & 15, pairs >> 4], dim=-1).reshape(n, n_groups * g)
    else:
        q = wt.permute(0, 3, 1, 2, 4).reshape(n, n_groups * g)
    return (pack_codes(q, bits, g), st.permute(0, 2, 1).reshape(n, n_groups).contiguous(),
            zt.permute(0, 2, 1).reshape(n, n_groups).contiguous())


# ----------------------------------------------------------------------------------------- running

@intrinsic
def _call(typingctx, addr, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13):
    """Call the compiled function at ``addr`` with 14 int64 arguments (numba cannot name it otherwise
    without baking the process-specific address into its on-disk cache)."""
    sig = types.void(*([types.int64] * (_NARGS + 1)))

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(64)] * _NARGS)
        builder.call(builder.inttoptr(args[0], fnty.as_pointer()), args[1:])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True)
def _launch(addr_step, addr_one, xb, xs, g, wt_p, st_p, zt_p, y_p, bias_p, n_tiles, n_tasks):  # pragma: no cover
    """Σx per (row, group) from the bf16 bits, then the tiles split over ``n_tasks`` parallel tasks (steps of
    TILES tiles; the last ``n_tiles % TILES`` one at a time)."""
    m, kp = xb.shape
    n_groups = kp // g
    for r in numba.prange(m):
        for j in range(n_groups):
            s = np.float32(0.0)
            for t in range(j * g, (j + 1) * g):
                s += np.uint32(np.uint32(xb[r, t]) << np.uint32(16)).view(np.float32)
            xs[r, j] = s
    nch = np.int64(m // ROWS)
    x_p = np.int64(xb.ctypes.data)
    xs_p = np.int64(xs.ctypes.data)
    steps = n_tiles // TILES
    ldx = np.int64(kp // 2)
    h = np.int64(g // 2)
    for task in numba.prange(n_tasks):
        a = np.int64(task * steps // n_tasks) * TILES
        b = np.int64((task + 1) * steps // n_tasks) * TILES
        if b > a:
            _call(addr_step, a, b, wt_p, st_p, zt_p, x_p, ldx, xs_p, np.int64(n_groups), h, y_p,
                  np.int64(n_tiles * LANES), nch, bias_p)
    if n_tiles % TILES:
        _call(addr_one, np.int64(steps * TILES), np.int64(n_tiles), wt_p, st_p, zt_p, x_p, ldx, xs_p,
              np.int64(n_groups), h, y_p, np.int64(n_tiles * LANES), nch, bias_p)


_ZERO_BIAS: dict[int, torch.Tensor] = {}


def bf16_mm(x: torch.Tensor, wt: torch.Tensor, st: torch.Tensor, zt: torch.Tensor, g: int,
            bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x · Ŵᵀ + b`` (M × N, bf16) for bf16 x (M × K, K ≤ K_pad) with the weight in :func:`to_layout`'s
    form (4-bit or byte codes, told apart by its shape); fp32 accumulation, one rounding to bf16 at the end."""
    if wt.dim() not in (4, 5):
        raise ValueError(f"bf16 weight-only kernel: codes must be 4-D (4-bit) or 5-D (bytes), got {tuple(wt.shape)}")
    t, n_groups, h, lanes = wt.shape[:4]
    width = 4 if wt.dim() == 4 else 8
    kp, n = n_groups * g, t * LANES
    m, k = x.shape
    if (lanes != LANES or h * 2 != g or k > kp or x.dtype != torch.bfloat16 or wt.dtype != torch.uint8
            or (width == 8 and wt.shape[4] != 2)
            or tuple(st.shape) != (t, n_groups, LANES) or st.dtype != torch.float16
            or tuple(zt.shape) != (t, n_groups, LANES) or zt.dtype != torch.uint8
            or (bias is not None and tuple(bias.shape) != (n,))
            or not (wt.is_contiguous() and st.is_contiguous() and zt.is_contiguous())):
        raise ValueError(f"bf16 weight-only kernel: buffers do not fit together: x {tuple(x.shape)} {x.dtype}, "
                         f"codes {tuple(wt.shape)}, steps {tuple(st.shape)}, zero points {tuple(zt.shape)}, g={g}")
    if m == 0:
        return x.new_zeros(0, n)
    xp = torch.nn.functional.pad(x, (0, kp - k)) if kp != k else x.contiguous()
    if bias is None:
        b = _ZERO_BIAS.get(n)
        if b is None:
            b = _ZERO_BIAS[n] = torch.zeros(n)
    elif bias.dtype != torch.float32 or not bias.is_contiguous():
        b = bias.detach().to(torch.float32).contiguous()
    else:
        b = bias
    y = torch.empty(m, n, dtype=torch.bfloat16)
    xs = np.empty((m, n_groups), np.float32)
    _, addr = _compiled(width)
    rest = m % ROWS
    tasks = max(1, min(numba.get_num_threads(), torch.get_num_threads(), t // TILES))
    _launch(addr[(rest, TILES)], addr[(rest, 1)], xp.view(torch.uint16).numpy(), xs, g,
            wt.data_ptr(), st.data_ptr(), zt.data_ptr(), y.data_ptr(), b.data_ptr(), t, tasks)
    return y
