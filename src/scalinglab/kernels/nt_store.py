"""Non-temporal (streaming) stores for numba kernels, as llvmlite intrinsics.

A normal store to a line that is not in cache first reads the line (read-for-ownership), then
writes it back: two memory transfers per output byte. A non-temporal store (``vmovntps``) writes
the whole line through the write-combining buffers without reading it and without evicting other
data from the caches. It pays off only for output that is written once and not read again soon:
two-pass softmax's pass 2 on rows larger than the L3.

LLVM's loop vectoriser widens a scalar store tagged ``!nontemporal`` only if the target has a
non-temporal vector store for the store's alignment, and x86 has them only for aligned vectors.
:func:`store_nt` therefore declares its scalar store 64-byte aligned. A loop that uses it must start
at a 64-byte-aligned element of ``dst``: the vectorised body then steps one aligned zmm line at a
time (``vmovntps``/``vmovntpd``), and the scalar/epilogue remainder LLVM emits uses ``movntss``/
``movntsd`` (SSE4A) or ``movnti``, neither of which requires alignment. Callers also make the trip
count a whole number of lines, so that remainder does not run at all.

* ``address(a)``: the address of ``a``'s first element, as an integer (to find the aligned start).
* ``store_nt(dst, i, v)``: ``dst[i] = v`` with a non-temporal store (see above); no bounds check.
* ``store_fence()``: ``sfence``; streaming stores are weakly ordered, so a kernel that used them
  fences before returning, and its results are visible to the thread that joins it.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

LINE_BYTES = 64


def _float_array(ty):
    return isinstance(ty, types.Array) and ty.ndim == 1 and ty.layout == "C" and ty.dtype in (types.float32, types.float64)


@intrinsic
def address(typingctx, a):
    """Integer address of the first element of a 1-D C-contiguous float array."""
    if not _float_array(a):
        return None

    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.ptrtoint(arr.data, context.get_value_type(types.intp))

    return types.intp(a), codegen


@intrinsic
def store_nt(typingctx, dst, i, value):
    """dst[i] = value, non-temporal, declared 64-byte aligned (see the module docstring); no bounds check."""
    if not (_float_array(dst) and value == dst.dtype and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        dst_ty, i_ty, _ = sig.args
        d = context.make_array(dst_ty)(context, builder, args[0])
        di = context.cast(builder, args[1], i_ty, types.intp)
        store = builder.store(args[2], builder.gep(d.data, [di], inbounds=True), align=LINE_BYTES)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()

    return types.none(dst, i, value), codegen


@intrinsic
def store_fence(typingctx):
    """sfence: order this thread's streaming stores before everything it does afterwards."""

    def codegen(context, builder, sig, args):
        if platform.machine().lower() not in ("x86_64", "amd64"):
            builder.fence("seq_cst")
            return context.get_dummy_value()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.none(), codegen
