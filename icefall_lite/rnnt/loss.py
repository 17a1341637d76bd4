"""Built-in RNN-T losses with k2's API: simple (additive joiner), smoothed, pruned and full.

Every loss reduces its inputs to two lattice tensors and runs
:func:`~icefall_lite.rnnt.mutual_information.mutual_information_recursion` on them:

* ``px`` (B, S, T + 1) for ``rnnt_type="regular"`` or (B, S, T) otherwise: log-probability of
  emitting symbol ``symbols[b, s]`` at frame ``t`` after ``s`` symbols;
* ``py`` (B, S + 1, T): log-probability of the termination (blank) symbol there.

``rnnt_type``:

* ``"regular"``: emitting a symbol stays on the frame; only blank advances time. Column ``T``
  of px (the one-past-the-end frame, or ``t_end`` with a boundary) is ``-inf``.
* ``"modified"``: every emission advances one frame (at most one symbol per frame), so a
  sequence needs ``T >= S``.
* ``"constrained"``: like modified, but a symbol emission also pays for the blank that the *next*
  context would emit on the same frame (``px += py[:, 1:]``).

Shapes follow k2: ``B`` batch, ``T`` encoder frames, ``S`` symbols (blank excluded), ``C``
vocabulary size including blank. ``boundary`` is an optional int64 (B, 4) tensor with rows
``[0, 0, num_symbols, num_frames]`` (begin symbol, begin frame, end symbol, end frame).
Losses are negated log-likelihoods in nats.
"""

import logging
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from icefall_lite.rnnt.mutual_information import mutual_information_recursion

__all__ = [
    "do_rnnt_pruning",
    "get_rnnt_logprobs",
    "get_rnnt_logprobs_joint",
    "get_rnnt_logprobs_pruned",
    "get_rnnt_logprobs_smoothed",
    "get_rnnt_prune_ranges",
    "rnnt_loss",
    "rnnt_loss_pruned",
    "rnnt_loss_simple",
    "rnnt_loss_smoothed",
]

RNNT_TYPES = ("regular", "modified", "constrained")
_NEG_INF = float("-inf")


def _check_rnnt_type(rnnt_type: str) -> None:
    if rnnt_type not in RNNT_TYPES:
        raise ValueError(f"rnnt_type must be one of {RNNT_TYPES}, got {rnnt_type!r}")


def _check_lengths(S: int, T: int, rnnt_type: str, boundary: Optional[Tensor]) -> None:
    """Raises instead of silently returning an infinite loss when no alignment exists."""
    if rnnt_type == "regular":
        return
    if boundary is None:
        if S > T:
            raise ValueError(
                f"rnnt_type={rnnt_type!r} emits at most one symbol per frame, but got S={S} "
                f"symbols for T={T} frames: the loss would be infinite"
            )
        return
    num_symbols = boundary[:, 2] - boundary[:, 0]
    num_frames = boundary[:, 3] - boundary[:, 1]
    too_long = num_symbols > num_frames
    if bool(too_long.any()):
        b = int(too_long.nonzero()[0, 0])
        raise ValueError(
            f"rnnt_type={rnnt_type!r} emits at most one symbol per frame, but sequence {b} "
            f"has S={int(num_symbols[b])} symbols for T={int(num_frames[b])} frames: the loss "
            "would be infinite"
        )


def _mask_regular_end_frame(px: Tensor, boundary: Optional[Tensor]) -> Tensor:
    """Regular RNN-T cannot emit a symbol on the frame after the last one: px[b, :, t_end] = -inf.

    Column T is already -inf; with a boundary the end frame differs per sequence.
    """
    if boundary is None:
        return px
    B, _, T1 = px.shape
    frames = torch.arange(T1, device=px.device).view(1, 1, T1)
    return px.masked_fill(frames == boundary[:, 3].view(B, 1, 1), _NEG_INF)


def _append_end_frame(px: Tensor) -> Tensor:
    """(B, S, T) -> (B, S, T + 1) with a -inf column for the regular recursion."""
    return torch.cat([px, px.new_full((px.shape[0], px.shape[1], 1), _NEG_INF)], dim=2)


def _finish_lattice(px: Tensor, py: Tensor, rnnt_type: str, boundary: Optional[Tensor]) -> Tensor:
    """Applies the rnnt_type-specific last touch to px (B, S, T) and returns it."""
    if rnnt_type == "regular":
        return _mask_regular_end_frame(_append_end_frame(px), boundary)
    if rnnt_type == "constrained":
        return px + py[:, 1:, :]
    return px


def _apply_delay_penalty(
    px: Tensor, delay_penalty: float, rnnt_type: str, boundary: Optional[Tensor]
) -> Tensor:
    """Rewards early emissions: adds ``delay_penalty * ((T_b - 1) / 2 - t)`` to px[b, :, t].

    The offset centres the penalty so that a path emitting uniformly is unaffected on average
    (see k2 issue 955); ``T_b`` is the sequence's end frame.
    """
    if delay_penalty <= 0.0:
        return px
    B, _, T0 = px.shape
    T = T0 - 1 if rnnt_type == "regular" else T0
    if boundary is None:
        offset = torch.full((B,), (T - 1) / 2, dtype=torch.float64, device=px.device)
    else:
        offset = (boundary[:, 3] - 1) / 2
    frames = torch.arange(T0, device=px.device)
    penalty = (offset.view(B, 1, 1) - frames.view(1, 1, T0)) * delay_penalty
    return px + penalty.to(px.dtype)


def _reduce(negated_loss: Tensor, reduction: Optional[str]) -> Tensor:
    if reduction == "none":
        return -negated_loss
    if reduction == "mean":
        return -negated_loss.mean()
    if reduction == "sum":
        return -negated_loss.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _check_symbols(symbols: Tensor, B: int, S: int, where: str) -> None:
    if tuple(symbols.shape) != (B, S):
        raise ValueError(
            f"{where}: symbols must have shape (B, S) = ({B}, {S}), got {tuple(symbols.shape)}"
        )


def _additive_normalizers(lm: Tensor, am: Tensor) -> Tensor:
    """log sum_c exp(lm[b, s, c] + am[b, t, c]) for all (s, t) as one matmul: (B, S + 1, T).

    Each side is shifted by its max before exp() so that the products stay in range. The shifts
    cancel exactly, so they are detached: autograd through max() would scatter a gradient into
    the arg-max positions that sums to zero anyway (and amax() is much cheaper than max()).
    """
    lm_max = lm.detach().amax(dim=2, keepdim=True)  # (B, S + 1, 1)
    am_max = am.detach().amax(dim=2, keepdim=True)  # (B, T, 1)
    products = torch.matmul((lm - lm_max).exp(), (am - am_max).exp().transpose(1, 2))
    # `tiny` keeps log() finite when every product underflows.
    return (products + torch.finfo(lm.dtype).tiny).log() + lm_max + am_max.transpose(1, 2)


def _check_simple_inputs(lm: Tensor, am: Tensor, symbols: Tensor, where: str) -> Tuple[int, ...]:
    if lm.ndim != 3 or am.ndim != 3 or lm.shape[0] != am.shape[0] or lm.shape[2] != am.shape[2]:
        raise ValueError(
            f"{where}: expected lm (B, S+1, C) and am (B, T, C), got {tuple(lm.shape)} and "
            f"{tuple(am.shape)}"
        )
    B, T, C = am.shape
    S = lm.shape[1] - 1
    _check_symbols(symbols, B, S, where)
    return B, S, T, C


def get_rnnt_logprobs(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    rnnt_type: str = "regular",
    boundary: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """Lattice log-probs for an additive joiner, ``logits[b, t, s] = lm[b, s] + am[b, t]``.

    Args:
      lm: (B, S + 1, C) unnormalised decoder ("language model") scores; row s follows s symbols.
      am: (B, T, C) unnormalised encoder ("acoustic") scores.
      symbols: (B, S) int64 symbol ids.
      termination_symbol: blank id.
    Returns:
      (px, py): (B, S, T + 1) or (B, S, T), and (B, S + 1, T); see the module docstring.
    """
    _check_rnnt_type(rnnt_type)
    B, S, T, C = _check_simple_inputs(lm, am, symbols, "get_rnnt_logprobs")
    _check_lengths(S, T, rnnt_type, boundary)
    normalizers = _additive_normalizers(lm, am)  # (B, S + 1, T)

    px_am = torch.gather(am, 2, symbols.unsqueeze(1).expand(B, T, S)).transpose(1, 2)
    px_lm = torch.gather(lm[:, :S], 2, symbols.unsqueeze(2))  # (B, S, 1)
    px = px_am + px_lm - normalizers[:, :S]  # (B, S, T)

    py = (
        am[:, :, termination_symbol].unsqueeze(1)
        + lm[:, :, termination_symbol].unsqueeze(2)
        - normalizers
    )
    return _finish_lattice(px, py, rnnt_type, boundary), py


def rnnt_loss_simple(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
    return_grad: bool = False,
) -> Union[Tensor, Tuple[Tensor, Tuple[Tensor, Tensor]]]:
    """RNN-T loss with an additive joiner (the cheap loss that drives pruning).

    Args:
      lm: (B, S + 1, C); am: (B, T, C); symbols: (B, S); termination_symbol: blank id.
      boundary: optional (B, 4) int64, rows ``[0, 0, S_b, T_b]``.
      rnnt_type: "regular", "modified" or "constrained".
      delay_penalty: > 0 rewards emitting symbols early (see :func:`_apply_delay_penalty`).
      reduction: "none" -> (B,), "mean" or "sum" -> scalar.
      return_grad: also return ``(px_grad, py_grad)``, the occupation probabilities of the
        lattice arcs (gradients of the un-reduced negated loss), for
        :func:`get_rnnt_prune_ranges`.
    Returns:
      loss, or ``(loss, (px_grad, py_grad))`` when ``return_grad``.
    """
    px, py = get_rnnt_logprobs(lm, am, symbols, termination_symbol, rnnt_type, boundary)
    px = _apply_delay_penalty(px, delay_penalty, rnnt_type, boundary)
    if return_grad:
        scores, grads = mutual_information_recursion(px, py, boundary, return_grad=True)
        return _reduce(scores, reduction), grads
    return _reduce(mutual_information_recursion(px, py, boundary), reduction)


# logsumexp() makes a temporary as large as its input; working through the frames in slices of
# at most this many elements keeps that temporary small (it would otherwise set the peak memory
# of the pruned loss, whose other big tensors are the logits and their gradient).
_LOGSUMEXP_CHUNK_ELEMENTS = 1 << 22


def _chunked_logsumexp(logits: Tensor) -> Tensor:
    """torch.logsumexp(logits, dim=3) for (B, T, R, C) logits, a few frames at a time."""
    B, T, R, C = logits.shape
    frames_per_chunk = max(1, _LOGSUMEXP_CHUNK_ELEMENTS // max(1, B * R * C))
    if frames_per_chunk >= T:
        return torch.logsumexp(logits, dim=3)
    out = logits.new_empty(B, T, R)
    for start in range(0, T, frames_per_chunk):
        end = min(T, start + frames_per_chunk)
        torch.logsumexp(logits[:, start:end], dim=3, out=out[:, start:end])
    return out


class _SymbolAndBlankLogprobs(torch.autograd.Function):
    """log_softmax(logits) read at one symbol per cell and at blank, with a fused backward.

    Autograd through ``logsumexp`` + ``gather`` + indexing would build three (B, T, R, C)
    gradients (and zero-fill two of them) and add them up; here the backward writes one:
    ``-softmax * (g_symbol + g_blank)``, plus ``g_symbol`` at the symbol and ``g_blank`` at
    blank. The softmax is recomputed from the saved logits instead of kept from the forward,
    so nothing of size (B, T, R, C) is held between forward and backward beyond the logits.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, symbol_ids: Tensor, blank: int) -> Tuple[Tensor, Tensor]:
        normalizers = _chunked_logsumexp(logits)  # (B, T, R)
        symbol_logprobs = torch.gather(logits, 3, symbol_ids.unsqueeze(3)).squeeze(3)
        symbol_logprobs = symbol_logprobs - normalizers
        blank_logprobs = logits[:, :, :, blank] - normalizers
        ctx.save_for_backward(logits, normalizers, symbol_ids)
        ctx.blank = blank
        return symbol_logprobs, blank_logprobs

    @staticmethod
    def backward(ctx, symbol_grad: Tensor, blank_grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        logits, normalizers, symbol_ids = ctx.saved_tensors
        grad = torch.sub(logits, normalizers.unsqueeze(3)).exp_()
        grad.mul_((symbol_grad + blank_grad).neg_().unsqueeze(3))
        grad.scatter_add_(3, symbol_ids.unsqueeze(3), symbol_grad.unsqueeze(3))
        grad[:, :, :, ctx.blank] += blank_grad
        return grad, None, None


def _symbol_and_blank_logprobs(
    logits: Tensor, symbol_ids: Tensor, blank: int
) -> Tuple[Tensor, Tensor]:
    """(B, T, R, C) logits, (B, T, R) symbol ids -> two (B, T, R) log-probabilities."""
    if not torch.is_grad_enabled() or not logits.requires_grad:
        normalizers = _chunked_logsumexp(logits)
        symbol_logprobs = torch.gather(logits, 3, symbol_ids.unsqueeze(3)).squeeze(3)
        return symbol_logprobs - normalizers, logits[:, :, :, blank] - normalizers
    return _SymbolAndBlankLogprobs.apply(logits, symbol_ids, blank)


def get_rnnt_logprobs_joint(
    logits: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    rnnt_type: str = "regular",
    boundary: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """Lattice log-probs from a full joiner output.

    Args:
      logits: (B, T, S + 1, C) unnormalised joiner output.
      symbols: (B, S); termination_symbol: blank id.
    Returns:
      (px, py) as for :func:`get_rnnt_logprobs`.
    """
    _check_rnnt_type(rnnt_type)
    if logits.ndim != 4:
        raise ValueError(
            f"get_rnnt_logprobs_joint: logits must be (B, T, S+1, C), got {tuple(logits.shape)}"
        )
    B, T, S1, C = logits.shape
    S = S1 - 1
    _check_symbols(symbols, B, S, "get_rnnt_logprobs_joint")
    _check_lengths(S, T, rnnt_type, boundary)
    # Position S has no symbol to emit; read blank there (its px entry is dropped).
    padded_symbols = torch.cat([symbols, symbols.new_full((B, 1), termination_symbol)], dim=1)
    symbol_logprobs, blank_logprobs = _symbol_and_blank_logprobs(
        logits, padded_symbols.unsqueeze(1).expand(B, T, S1), termination_symbol
    )
    px = symbol_logprobs[:, :, :S].transpose(1, 2)  # (B, S, T)
    py = blank_logprobs.transpose(1, 2)  # (B, S + 1, T)
    return _finish_lattice(px, py, rnnt_type, boundary), py


def rnnt_loss(
    logits: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
) -> Tensor:
    """The full (unpruned) RNN-T loss.

    Args:
      logits: (B, T, S + 1, C) joiner output for every frame and symbol position.
      symbols: (B, S); termination_symbol: blank id; the rest as in :func:`rnnt_loss_simple`.
    Returns:
      (B,) for reduction "none", else a scalar.
    """
    px, py = get_rnnt_logprobs_joint(logits, symbols, termination_symbol, rnnt_type, boundary)
    px = _apply_delay_penalty(px, delay_penalty, rnnt_type, boundary)
    return _reduce(mutual_information_recursion(px, py, boundary), reduction)


def _monotonic_lower_bound(x: Tensor) -> Tensor:
    """Largest non-decreasing sequence that is <= x along the last axis (a reversed cummin)."""
    return torch.flip(torch.cummin(torch.flip(x, dims=(-1,)), dim=-1).values, dims=(-1,))


def _adjust_pruning_lower_bound(s_begin: Tensor, s_range: int) -> Tensor:
    """Makes window starts (B, T) valid: non-decreasing, 0 at frame 0, and never advancing by
    ``s_range`` or more between frames (which would skip a symbol).

    ``s_begin[t+1] - s_begin[t] <= s_range - 1`` is the same as
    ``(s_range - 1) * t - s_begin[t]`` being non-decreasing, so the second constraint is one more
    monotonic lower bound in that transformed space; clamping there at 0 pins frame 0 to symbol 0.
    """
    T = s_begin.shape[1]
    slope = (s_range - 1) * torch.arange(T, device=s_begin.device)
    s_begin = _monotonic_lower_bound(s_begin)
    transformed = _monotonic_lower_bound(slope - s_begin).clamp(min=0)
    return slope - transformed


def get_rnnt_prune_ranges(
    px_grad: Tensor,
    py_grad: Tensor,
    boundary: Tensor,
    s_range: int,
) -> Tensor:
    """Chooses, per frame, the ``s_range`` consecutive symbol positions the full joiner will see.

    Following the pruned RNN-T paper (section 3.2), the window start on frame ``t`` maximises the
    occupation mass of blank arcs inside the window minus the symbol arc that enters it from
    below; the starts are then made monotonic and gap-free (:func:`_adjust_pruning_lower_bound`),
    and frames at or after a sequence's last frame are pinned so the window ends on its last
    symbol.

    Args:
      px_grad: (B, S, T + 1) (regular) or (B, S, T) occupation of symbol arcs.
      py_grad: (B, S + 1, T) occupation of blank arcs.
      boundary: (B, 4) int64, rows ``[0, 0, S_b, T_b]``.
      s_range: window size; raised to the minimum that can still reach every symbol in the
        regular case and lowered to S + 1 when larger (both with a warning).
    Returns:
      ranges: (B, T, s_range) int64, ``ranges[b, t] = s_begin[b, t] + arange(s_range)``.
    """
    B, S, T1 = px_grad.shape
    T = py_grad.shape[2]
    if T1 not in (T, T + 1) or tuple(py_grad.shape) != (B, S + 1, T):
        raise ValueError(
            f"get_rnnt_prune_ranges: got px_grad {tuple(px_grad.shape)} and py_grad "
            f"{tuple(py_grad.shape)}; expected (B, S, T[+1]) and (B, S+1, T)"
        )
    if boundary is None or tuple(boundary.shape) != (B, 4):
        raise ValueError(f"get_rnnt_prune_ranges: boundary must be a ({B}, 4) tensor")
    is_regular = T1 == T + 1
    _check_lengths(S, T, "regular" if is_regular else "modified", boundary)
    S1 = S + 1

    if is_regular:
        # With at most s_range - 1 new symbols per frame, a sequence of S_b symbols over T_b
        # frames needs (s_range - 1) * T_b + 1 >= S_b + 1.
        needed = (
            int((boundary[:, 2] - 1).div(boundary[:, 3].clamp(min=1), rounding_mode="trunc").max())
            + 2
        )
        if s_range < needed:
            logging.warning(
                f"get_rnnt_prune_ranges: s_range={s_range} cannot cover "
                f"S={boundary[:, 2].tolist()} symbols in T={boundary[:, 3].tolist()} frames; "
                f"using {needed}"
            )
            s_range = needed
    if s_range > S:
        s_range = S + 1
    min_range = 2 if is_regular else 1
    if s_range < min_range:
        raise ValueError(
            f"get_rnnt_prune_ranges: s_range must be >= {min_range} for "
            f"{'regular' if is_regular else 'modified'} RNN-T, got {s_range}"
        )

    num_starts = S1 - s_range + 1
    # Blank-arc mass inside each window [s0, s0 + s_range): (B, num_starts, T).
    window_mass = py_grad.unfold(1, s_range, 1).sum(dim=3)
    # Minus the symbol arc entering the window from s0 - 1 (none for s0 = 0).
    entering = torch.cat([px_grad.new_zeros(B, 1, T1), px_grad], dim=1)[:, :num_starts, :T]
    s_begin = torch.argmax(window_mass - entering, dim=1)  # (B, T)

    frames = torch.arange(T, device=px_grad.device).view(1, T)
    inside = frames < (boundary[:, 3] - 1).view(B, 1)
    last_start = (boundary[:, 2] - s_range + 1).clamp(min=0).view(B, 1)
    s_begin = torch.where(inside, s_begin, last_start)
    # Modified/constrained RNN-T moves at most one symbol per frame.
    s_begin = _adjust_pruning_lower_bound(s_begin, s_range if is_regular else 2)
    return s_begin.unsqueeze(2) + torch.arange(s_range, device=px_grad.device)


def do_rnnt_pruning(am: Tensor, lm: Tensor, ranges: Tensor) -> Tuple[Tensor, Tensor]:
    """Selects the joiner inputs inside the pruning ranges.

    Args:
      am: (B, T, encoder_dim) encoder-side joiner input.
      lm: (B, S + 1, decoder_dim) decoder-side joiner input.
      ranges: (B, T, s_range) from :func:`get_rnnt_prune_ranges`.
    Returns:
      (am_pruned (B, T, s_range, encoder_dim) -- an expanded view, no copy;
       lm_pruned (B, T, s_range, decoder_dim)).
    """
    B, T, s_range = ranges.shape
    if am.shape[:2] != (B, T) or lm.shape[0] != B:
        raise ValueError(
            f"do_rnnt_pruning: am {tuple(am.shape)}, lm {tuple(lm.shape)} and ranges "
            f"{tuple(ranges.shape)} disagree on B or T"
        )
    S1, decoder_dim = lm.shape[1], lm.shape[2]
    am_pruned = am.unsqueeze(2).expand(B, T, s_range, am.shape[2])
    # Whole rows via index_select (backward: index_add_) rather than an element-wise gather
    # over an expanded index: about 3x faster on CPU at LibriSpeech sizes.
    rows = (ranges + torch.arange(B, device=ranges.device).view(B, 1, 1) * S1).reshape(-1)
    lm_pruned = lm.reshape(B * S1, decoder_dim).index_select(0, rows)
    return am_pruned, lm_pruned.view(B, T, s_range, decoder_dim)


def get_rnnt_logprobs_pruned(
    logits: Tensor,
    symbols: Tensor,
    ranges: Tensor,
    termination_symbol: int,
    boundary: Tensor,
    rnnt_type: str = "regular",
) -> Tuple[Tensor, Tensor]:
    """Lattice log-probs from a pruned joiner output; positions outside the ranges are -inf.

    Args:
      logits: (B, T, s_range, C); ``logits[b, t, j]`` is for symbol position ``ranges[b, t, j]``.
      symbols: (B, S); ranges: (B, T, s_range); termination_symbol: blank id.
    Returns:
      (px, py) as for :func:`get_rnnt_logprobs`.
    """
    _check_rnnt_type(rnnt_type)
    if logits.ndim != 4:
        raise ValueError(
            "get_rnnt_logprobs_pruned: logits must be (B, T, s_range, C), got "
            f"{tuple(logits.shape)}"
        )
    B, T, s_range, C = logits.shape
    if tuple(ranges.shape) != (B, T, s_range):
        raise ValueError(
            f"get_rnnt_logprobs_pruned: ranges must be ({B}, {T}, {s_range}), got "
            f"{tuple(ranges.shape)}"
        )
    S = symbols.shape[1]
    _check_symbols(symbols, B, S, "get_rnnt_logprobs_pruned")
    if rnnt_type == "constrained" and s_range < 2 and S > 0:
        # A constrained symbol arc also pays for the blank at the next position, which a window
        # of one position never contains: every path would be pruned away.
        raise ValueError(
            "get_rnnt_logprobs_pruned: rnnt_type='constrained' needs s_range >= 2, got "
            f"{s_range} (the loss would be infinite)"
        )
    _check_lengths(S, T, rnnt_type, boundary)

    # Position S has no symbol to emit; give it blank so the gather stays in range.
    padded_symbols = torch.cat([symbols, symbols.new_full((B, 1), termination_symbol)], dim=1)
    window_symbols = torch.gather(padded_symbols.unsqueeze(1).expand(B, T, S + 1), 2, ranges)
    px_window, py_window = _symbol_and_blank_logprobs(logits, window_symbols, termination_symbol)

    # Scatter the window back onto all S + 1 positions (B, T, S + 1), -inf outside it.
    outside = logits.new_full((B, T, S + 1), _NEG_INF)
    px = outside.scatter(2, ranges, px_window)[:, :, :S].transpose(1, 2)  # (B, S, T)
    py = outside.scatter(2, ranges, py_window).transpose(1, 2)  # (B, S + 1, T)
    return _finish_lattice(px, py, rnnt_type, boundary), py


def rnnt_loss_pruned(
    logits: Tensor,
    symbols: Tensor,
    ranges: Tensor,
    termination_symbol: int,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
) -> Tensor:
    """RNN-T loss over the pruned lattice (the joiner is evaluated only inside ``ranges``).

    Args:
      logits: (B, T, s_range, C) joiner output on ``do_rnnt_pruning``'s inputs.
      symbols: (B, S); ranges: (B, T, s_range); the rest as in :func:`rnnt_loss_simple`.
    Returns:
      (B,) for reduction "none", else a scalar.
    """
    px, py = get_rnnt_logprobs_pruned(
        logits, symbols, ranges, termination_symbol, boundary, rnnt_type
    )
    px = _apply_delay_penalty(px, delay_penalty, rnnt_type, boundary)
    return _reduce(mutual_information_recursion(px, py, boundary), reduction)


def get_rnnt_logprobs_smoothed(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    lm_only_scale: float = 0.1,
    am_only_scale: float = 0.1,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
) -> Tuple[Tensor, Tensor]:
    """Like :func:`get_rnnt_logprobs`, interpolated (in log space) with an LM-only model and an
    AM-only model::

        (1 - lm_only_scale - am_only_scale) * log p(joint)
            + lm_only_scale * log p(lm alone) + am_only_scale * log p(am with a unigram LM)

    The unigram LM is the batch average of the normalised ``lm`` distributions.
    Shapes as for :func:`get_rnnt_logprobs`.
    """
    _check_rnnt_type(rnnt_type)
    B, S, T, C = _check_simple_inputs(lm, am, symbols, "get_rnnt_logprobs_smoothed")
    _check_lengths(S, T, rnnt_type, boundary)
    tiny = torch.finfo(lm.dtype).tiny

    normalizers = _additive_normalizers(lm, am)  # (B, S + 1, T)
    lm_logprobs = lm.log_softmax(dim=2)  # (B, S + 1, C)
    unigram = (lm_logprobs.exp().mean(dim=(0, 1)) + tiny).log()  # (C,)
    # AM-only: am combined with the unigram LM, normalised per frame.
    am_only_normalizers = torch.logsumexp(am + unigram, dim=2).unsqueeze(1)  # (B, 1, T)

    am_symbols = torch.gather(am, 2, symbols.unsqueeze(1).expand(B, T, S)).transpose(1, 2)
    lm_symbols = torch.gather(lm[:, :S], 2, symbols.unsqueeze(2))  # (B, S, 1)
    px_joint = am_symbols + lm_symbols - normalizers[:, :S]  # (B, S, T)
    px_lm_only = torch.gather(lm_logprobs[:, :S], 2, symbols.unsqueeze(2))  # (B, S, 1)
    px_am_only = am_symbols + unigram[symbols].unsqueeze(2) - am_only_normalizers

    am_blank = am[:, :, termination_symbol].unsqueeze(1)  # (B, 1, T)
    py_joint = am_blank + lm[:, :, termination_symbol].unsqueeze(2) - normalizers
    py_lm_only = lm_logprobs[:, :, termination_symbol].unsqueeze(2)  # (B, S + 1, 1)
    py_am_only = am_blank + unigram[termination_symbol] - am_only_normalizers

    joint_scale = 1.0 - lm_only_scale - am_only_scale
    # A scale of exactly 0 would turn -inf log-probs into nan (0 * -inf).
    lm_only_scale = lm_only_scale or 1.0e-20
    am_only_scale = am_only_scale or 1.0e-20
    px = joint_scale * px_joint + lm_only_scale * px_lm_only + am_only_scale * px_am_only
    py = joint_scale * py_joint + lm_only_scale * py_lm_only + am_only_scale * py_am_only
    return _finish_lattice(px, py, rnnt_type, boundary), py


def rnnt_loss_smoothed(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    lm_only_scale: float = 0.1,
    am_only_scale: float = 0.1,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
    return_grad: bool = False,
) -> Union[Tensor, Tuple[Tensor, Tuple[Tensor, Tensor]]]:
    """:func:`rnnt_loss_simple` on the smoothed lattice of :func:`get_rnnt_logprobs_smoothed`.

    Returns:
      loss, or ``(loss, (px_grad, py_grad))`` when ``return_grad``.
    """
    px, py = get_rnnt_logprobs_smoothed(
        lm, am, symbols, termination_symbol, lm_only_scale, am_only_scale, boundary, rnnt_type
    )
    px = _apply_delay_penalty(px, delay_penalty, rnnt_type, boundary)
    if return_grad:
        scores, grads = mutual_information_recursion(px, py, boundary, return_grad=True)
        return _reduce(scores, reduction), grads
    return _reduce(mutual_information_recursion(px, py, boundary), reduction)
