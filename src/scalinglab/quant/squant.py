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
Input moments (``moment_codes``). The row sum Σδ is the right quantity when every input of the row is the
same (the paper's ReLU conv nets, where a channel's inputs share one positive mean); a transformer linear
fed by a LayerNorm sees x_j = γ_j ẑ_j + β_j, ẑ the normalised residual stream. Let the inputs have
channel means μ_j and variances v_j, independent across channels, and write a_j = s_j δ_j for the weight
error of element j of one output row (s_j its scale). The output error Σ_j a_j x_j then has

    E[(Σ_j a_j x_j)²] = Var(Σ_j a_j x_j) + (E[Σ_j a_j x_j])² = Σ_j v_j a_j² + (Σ_j μ_j a_j)²,

a diagonal term (what RTN minimises when all v_j are equal) plus the square of a μ-weighted channel sum
(SQuant's channel term when all μ_j are equal): SQuant's CASE with per-channel weights. The moments come
from the caller, without data: from the norm (ẑ has, per token, mean 0 and variance 1 across channels;
taking E[ẑ_j] ≈ 0 and E[ẑ_j²] ≈ 1 per channel gives μ_j = β_j and v_j = γ_j²), or measured on text the
model samples itself (``quant/sampled_moments.py``), which also covers the linears no norm feeds. With c_j = v_j s_j², b_j = μ_j s_j and
E = Σ_j b_j δ_j, flipping element j's rounding (δ_j → δ_j − sign δ_j) adds c_j (1 − 2|δ_j|) ≥ 0 to the
diagonal term and moves E by −sign(δ_j) b_j. Starting from RTN, the flips that move E toward zero are
ranked by ρ_j = c_j (1 − 2|δ_j|) / |b_j| — diagonal cost per unit of |E| removed, the greedy order of
this knapsack-like problem — and the prefix of that ranking with the smallest objective
Σ c_j δ_j² + (|E| − Σ_taken |b_j|)² is taken (none if no prefix beats RTN). With all c_j and b_j equal
the ranking is SQuant's (largest |δ| first) and the stopping rule keeps |E| ≤ 1 − |δ_next| in steps
instead of SQuant's 0.5, since a flip then has to pay for its own element error. Guarantees: the
objective never exceeds RTN's, and |E| never exceeds |E_RTN|.

With absmax scales nothing is clamped, so all bounds above hold exactly; with a smaller (clipping) scale
the clamped elements keep their larger error and the bounds apply to the rest.
"""

from __future__ import annotations

import torch

from scalinglab.quant.primitives import amax_to_scale, qmax_for_bits

__all__ = ["squant_codes", "squant_weight", "moment_codes", "moment_objective"]


def _round_to_nearest(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, bits: int
                      ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """The starting point of every flip: x = W/s (+ z for asymmetric codes), q = clamp(round(x)) and the
    code range [qmin, qmax] (symmetric ±qmax, or [0, 2^bits − 1] with a zero point)."""
    x = w.detach().float() / scale.float()
    if zero is None:
        qmin, qmax = -qmax_for_bits(bits), qmax_for_bits(bits)
    else:
        qmin, qmax = 0, 2**bits - 1
        x = x + zero.float()
    return x, torch.clamp(torch.round(x), qmin, qmax), qmin, qmax


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
    x, q, qmin, qmax = _round_to_nearest(w, scale, zero, bits)
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


def moment_objective(delta: torch.Tensor, scale: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Expected squared output error per row, Σ_j v_j (s_j δ_j)² + (Σ_j μ_j s_j δ_j)², for rounding errors
    δ (out × in, in steps), scales s (broadcastable) and input channel means μ and variances v (in,)."""
    a = delta * scale
    return (a.pow(2) * var).sum(1) + (a * mean).sum(1).pow(2)


def moment_codes(w: torch.Tensor, scale: torch.Tensor, bits: int, mean: torch.Tensor, var: torch.Tensor,
                 zero: torch.Tensor | None = None) -> torch.Tensor:
    """Codes of W (out × in) that lower the expected output error for inputs with channel means μ = ``mean``
    and variances v = ``var`` (both (in,)); see the module docstring ("Input moments").

    Start from round-to-nearest; per row, with c_j = v_j s_j², b_j = μ_j s_j and E = Σ_j b_j δ_j, the
    candidates are the elements whose flip moves E toward zero (sign(δ_j)·b_j has E's sign), ranked by
    ρ_j = c_j (1 − 2|δ_j|) / |b_j| (element-error increase per unit of |E| removed); the flips taken are the
    prefix of that ranking that minimises Σ_j c_j δ_j² + E². Same code ranges and dtypes as
    :func:`squant_codes`.
    """
    if w.dim() != 2:
        raise ValueError(f"moment_codes expects a 2-D weight (out × in), got shape {tuple(w.shape)}")
    n_out, n_in = w.shape
    if mean.shape != (n_in,) or var.shape != (n_in,):
        raise ValueError(f"mean and var must have shape ({n_in},), got {tuple(mean.shape)}, {tuple(var.shape)}")
    x, q, qmin, qmax = _round_to_nearest(w, scale, zero, bits)
    delta = q - x
    s = scale.float().expand(n_out, n_in)
    c = var.float().clamp_min(0) * s.pow(2)
    b = mean.float() * s
    e = (b * delta).sum(1, keepdim=True)  # (out, 1)
    step = -torch.sign(delta)  # a flip moves δ_j by this, and E by step·b_j
    reduces = (step * b * torch.sign(e)) < 0
    in_range = torch.where(step > 0, q < qmax, q > qmin) & (step != 0)
    cand = reduces & in_range
    gain = torch.where(cand, b.abs(), 0.0)  # |E| removed by the flip
    cost = torch.where(cand, c * (1 - 2 * delta.abs()), 0.0)  # element-error increase
    ratio = torch.where(cand, cost / gain.clamp_min(torch.finfo(torch.float32).tiny), torch.inf)
    order = torch.sort(ratio, dim=1, stable=True).indices
    g_sorted, c_sorted = gain.gather(1, order), cost.gather(1, order)
    # objective change after the first k flips (k = 0 … n_in): Σ cost + (|E| − Σ gain)² − |E|²
    zeros = torch.zeros(n_out, 1)
    cum_g = torch.cat([zeros, g_sorted.cumsum(1)], 1)
    cum_c = torch.cat([zeros, c_sorted.cumsum(1)], 1)
    obj = cum_c + (e.abs() - cum_g).pow(2)
    k = obj.argmin(1, keepdim=True)  # first minimum: no flip unless it helps
    take = torch.zeros_like(cand)
    take.scatter_(1, order, torch.arange(n_in).expand(n_out, n_in) < k)
    q = q + take * step
    return q.to(torch.int8 if zero is None else torch.int16)
