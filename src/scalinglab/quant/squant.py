"""SQuant: data-free flipping of rounding decisions (Guo et al. 2022, "SQuant: On-the-Fly Data-Free
Quantization via Diagonal Hessian Approximation", ICLR 2022).

Round-to-nearest minimises each weight's own error, but the output of a linear layer sees *sums* of
weight errors. Guo et al. approximate the Hessian of the task loss by three diagonal terms — element-wise,
kernel-wise and output-channel-wise — and turn it into a discrete problem that needs no data, CASE
(Constrained Absolute Sum of Error): with δ = q − w/s the rounding error in units of the scale,

    minimise   |Σ_{n,i} δ_{m,n,i}|                     (channel m: the whole output row)
    such that  |Σ_i δ_{m,n,i}| stays small               (kernel n of channel m)
               |δ_{m,n,i}| ≤ 1                           (element: round up or down, never further)

solved progressively ("SQuant-E → SQuant-K → SQuant-C") by flipping rounding decisions, the
elements with the largest perturbation |δ| first:

1. SQuant-E: q = round(w/s); every |δ| ≤ 0.5.
2. SQuant-K: per kernel, E = Σδ; flip k = round(|E|) of the elements rounded the "wrong" way for E's
   sign (δ < 0 flips up when E < 0, δ > 0 flips down when E > 0), largest |δ| first. Afterwards
   |Σ_kernel δ| ≤ 0.5 and every flipped element has 0.5 ≤ |δ| ≤ 1.
3. SQuant-C: per channel, E_c = Σδ; each kernel offers at most one more flip — undoing its last flip when
   SQuant-K overshot (k ≥ |E|), else its next candidate in the same direction — and the round(|E_c|) offers
   of the needed direction with the largest |δ| are taken. Afterwards |Σ_channel δ| ≤ 0.5 and, since a
   kernel changes by at most one flip, |Σ_kernel δ| < 1 (the paper's relaxed kernel constraint).

Linear layers. A convolution's kernel is its k×k window for one (output, input) channel pair; a fully
connected layer has no such window: its "kernel" is a single weight, and the reference implementation
(github.com/clevercool/SQuant) then skips SQuant-K and runs SQuant-C over the whole output row. That is
``kernel_size=1`` here: element |δ| ≤ 1, row |Σδ| ≤ 0.5. ``kernel_size=g`` groups g consecutive input
weights of a row into a kernel (the natural unit when scales are per group of g inputs), adding the
kernel bound |Σ_group δ| < 1. The last group of a row may be shorter.

Codes stay in their range ([−qmax, qmax], or [0, 2^b − 1] for asymmetric codes with a zero point): an
element at the range's edge is never flipped outward.
With absmax scales nothing is clamped, so all bounds above hold exactly; with a smaller (clipping) scale
the clamped elements keep their larger error and the bounds apply to the rest.
"""

from __future__ import annotations

import torch

from scalinglab.quant.primitives import amax_to_scale, qmax_for_bits

__all__ = ["squant_codes", "squant_weight"]


def _ranks(priority: torch.Tensor) -> torch.Tensor:
    """Position of each element when its last axis is sorted by priority, largest first (ties: lower index
    first); ``rank < k`` then selects the k largest."""
    order = torch.sort(priority, dim=-1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return ranks


def _candidates(q: torch.Tensor, delta: torch.Tensor, up: torch.Tensor, valid: torch.Tensor, qmin: int,
                qmax: int) -> torch.Tensor:
    """Elements whose flip moves the sum the way ``up`` says: rounded down (δ < 0) below qmax when up,
    rounded up (δ > 0) above qmin when down."""
    cand_up = (delta < 0) & (q < qmax)
    cand_down = (delta > 0) & (q > qmin)
    return torch.where(up, cand_up, cand_down) & valid


def squant_codes(w: torch.Tensor, scale: torch.Tensor, bits: int, kernel_size: int = 1,
                 zero: torch.Tensor | None = None) -> torch.Tensor:
    """SQuant integer codes of W (out × in) for a given scale (broadcastable to W; e.g. (out, 1)).

    Returns int8 codes q in [−qmax, qmax] with W ≈ q·scale, qmax = 2^(bits−1) − 1. ``kernel_size`` is the
    number of consecutive inputs per kernel (1: the whole row is one channel of single-weight kernels, as
    the paper treats fully connected layers). Vectorised over rows and kernels; no loop over elements.

    Asymmetric codes: with ``zero`` (broadcastable to W) the codes are q in [0, 2^bits − 1] with
    W ≈ (q − zero)·scale, returned as int16 (8-bit asymmetric codes reach 255).
    """
    if w.dim() != 2:
        raise ValueError(f"squant_codes expects a 2-D weight (out × in), got shape {tuple(w.shape)}")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    x = w.detach().float() / scale.float()
    if zero is None:
        qmin, qmax = -qmax_for_bits(bits), qmax_for_bits(bits)
    else:
        qmin, qmax = 0, 2**bits - 1
        x = x + zero.float()
    q = torch.clamp(torch.round(x), qmin, qmax)
    n_out, n_in = q.shape
    n_k = -(-n_in // kernel_size)
    pad = n_k * kernel_size - n_in
    # (out, kernels, kernel_size); padding never becomes a candidate and adds nothing to the sums
    q = torch.nn.functional.pad(q, (0, pad)).view(n_out, n_k, kernel_size)
    x = torch.nn.functional.pad(x, (0, pad)).view(n_out, n_k, kernel_size)
    valid = torch.ones(n_in, dtype=torch.bool, device=q.device)
    valid = torch.nn.functional.pad(valid, (0, pad)).view(1, n_k, kernel_size)
    delta = q - x  # (out, kernels, kernel_size), |δ| ≤ 0.5 where nothing clamped

    if kernel_size == 1:
        # kernels of one weight: SQuant-K has nothing to flip (round(|δ|) = 0), each weight offers itself
        up = delta < 0
        offer = _candidates(q, delta, up, valid, qmin, qmax)
        offer_step = torch.where(up, 1.0, -1.0)
    else:
        # SQuant-K: per kernel, flip k = round(|E|) candidates of the needed direction, largest |δ| first
        e_k = delta.sum(-1, keepdim=True)  # (out, kernels, 1)
        up = e_k < 0
        cand = _candidates(q, delta, up, valid, qmin, qmax)
        rank = _ranks(torch.where(cand, delta.abs(), -1.0))
        k = torch.minimum(torch.round(e_k.abs()), cand.sum(-1, keepdim=True).to(e_k.dtype))
        step = torch.where(up, 1.0, -1.0)  # (out, kernels, 1)
        flip = cand & (rank < k)
        q = q + flip * step
        delta = q - x
        # The one flip each kernel offers to SQuant-C: undo its last flip if SQuant-K overshot, else its
        # next candidate in the same direction; its priority is the offered element's |δ| now.
        overshoot = (k > 0) & (k >= e_k.abs())
        offer = cand & torch.where(overshoot, rank == k - 1, rank == k)
        offer_step = torch.where(overshoot, -step, step).expand_as(q)

    # SQuant-C: per row, take the round(|E_c|) offers of the needed direction with the largest |δ|
    e_c = delta.sum(dim=(1, 2)).view(n_out, 1)  # (out, 1)
    step_c = torch.where(e_c < 0, 1.0, -1.0)
    offer = offer.reshape(n_out, -1) & (offer_step.reshape(n_out, -1) == step_c)
    rank_c = _ranks(torch.where(offer, delta.reshape(n_out, -1).abs(), -1.0))
    flip_c = offer & (rank_c < torch.round(e_c.abs()))
    q = q.reshape(n_out, -1) + flip_c * step_c
    return q[:, :n_in].to(torch.int8 if zero is None else torch.int16)


def squant_weight(w: torch.Tensor, bits: int, kernel_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """SQuant codes and scales (out,) of W (out × in) with RTN's per-output-channel absmax scales, so the
    two differ only in the rounding decisions."""
    qmax = qmax_for_bits(bits)
    w = w.detach().float()
    scale = amax_to_scale(w.abs().amax(dim=1), qmax)
    return squant_codes(w, scale[:, None], bits, kernel_size), scale.contiguous()
