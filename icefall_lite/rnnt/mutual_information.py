"""Built-in mutual-information recursion: the dynamic programme under every RNN-T loss.

For a batch of lattices with ``S + 1`` symbol positions and ``T + 1`` frame positions it computes
``p[b, s, t]``, the log of the total weight of all monotonic paths from ``(s_begin, t_begin)`` to
``(s, t)``::

    p[b, s_begin, t_begin] = 0
    regular  (px is (B, S, T + 1)):  p[b,s,t] = logaddexp(p[b,s-1,t]   + px[b,s-1,t],
                                                           p[b,s,t-1]   + py[b,s,t-1])
    modified (px is (B, S, T)):      p[b,s,t] = logaddexp(p[b,s-1,t-1] + px[b,s-1,t-1],
                                                           p[b,s,t-1]   + py[b,s,t-1])

and returns ``p[b, s_end, t_end]``. Cells with a negative index count as ``-inf``.

How it is vectorised: the lattice is swept in "steps" whose cells are independent given the
previous step. For the regular recursion a step is an anti-diagonal ``s + t = k`` (both
predecessors of ``(s, t)`` lie on diagonal ``k - 1``); for the modified recursion a step is a
frame ``t`` (both predecessors lie on frame ``t - 1``). Either way, writing ``P[k]`` for the
``(B, S + 1)`` vector of a step::

    P[k][s] = logaddexp(P[k-1][s-1] + X[k][s], P[k-1][s] + Y[k][s])

with the arc weights ``X`` (symbol arcs) and ``Y`` (blank / next-frame arcs) gathered once, before
the loop, into step-major tensors. The Python loop therefore runs ``S + T`` (regular) or ``T``
(modified) times, each iteration a few batched tensor operations.

The backward pass is the same sweep in reverse over the linear recursion of path occupancies::

    G[k-1][s]   += G[k][s]   * exp(P[k-1][s]   + Y[k][s] - P[k][s])
    G[k-1][s-1] += G[k][s]   * exp(P[k-1][s-1] + X[k][s] - P[k][s])

where the arc posteriors ``exp(...)`` are computed for the whole lattice at once after the forward
loop, so the reverse loop is two fused multiply-adds per step. ``G[k][s] * exp(...)`` is then the
gradient of the score with respect to that arc's ``px`` / ``py`` entry.
"""

from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

__all__ = ["mutual_information_recursion"]


def _diagonal_view(buffer: Tensor, num_steps: int) -> Tensor:
    """(K, B, S1) strided view of a (B, S1, >= K + S1) buffer.

    ``view[k, b, s] = buffer[b, s, k + S1 - 1 - s]``.

    Row s of the buffer holds lattice row s shifted right by ``S1 - 1`` columns, so the view's
    element (k, b, s) is lattice cell (s, k - s). Distinct (k, s) never share memory because a
    row is wider than K, so the view can be written as well as read.
    """
    B, S1, width = buffer.shape
    return buffer.as_strided(
        (num_steps, B, S1), (1, S1 * width, width - 1), buffer.storage_offset() + S1 - 1
    )


def _skew(x: Tensor, num_steps: int, fill: float) -> Tensor:
    """Rearranges a lattice tensor by anti-diagonals.

    Args:
      x: (B, S1, W).
      num_steps: number K of anti-diagonals wanted.
      fill: value for (k, s) with ``k - s`` outside ``[0, W)``.
    Returns:
      (K, B, S1) tensor ``out[k, b, s] = x[b, s, k - s]``.
    """
    B, S1, W = x.shape
    buffer = x.new_full((B, S1, max(num_steps, W) + S1), fill)
    buffer[:, :, S1 - 1 : S1 - 1 + W] = x
    return _diagonal_view(buffer, num_steps).contiguous()


def _unskew(d: Tensor, width: int) -> Tensor:
    """Inverse of :func:`_skew`: (K, B, S1) -> (B, S1, width), ``x[b,s,t] = d[s + t, b, s]``.

    Entries whose diagonal ``s + t`` is not in ``d`` become 0 (they carry no gradient).
    """
    K, B, S1 = d.shape
    buffer = d.new_zeros(B, S1, max(K, width) + S1)
    _diagonal_view(buffer, K).copy_(d)
    return buffer[:, :, S1 - 1 : S1 - 1 + width]


def _shift_lattice(x: Tensor, ds: Tensor, dt: Tensor, fill: float) -> Tensor:
    """Per-sequence shift: ``y[b, s, t] = x[b, s + ds[b], t + dt[b]]``, or ``fill`` if outside.

    Used to move a lattice whose boundary starts at ``(s_begin, t_begin)`` to start at (0, 0),
    and (with negated shifts) to move gradients back.
    """
    B, S, W = x.shape
    if S == 0 or W == 0:
        return x.clone()
    s = torch.arange(S, device=x.device).view(1, S, 1) + ds.view(B, 1, 1)
    t = torch.arange(W, device=x.device).view(1, 1, W) + dt.view(B, 1, 1)
    valid = (s >= 0) & (s < S) & (t >= 0) & (t < W)
    flat_index = (s.clamp(0, S - 1) * W + t.clamp(0, W - 1)).expand(B, S, W)
    y = torch.gather(x.reshape(B, S * W), 1, flat_index.reshape(B, S * W)).view(B, S, W)
    return y.masked_fill(~valid, fill)


def _step_arcs(px: Tensor, py: Tensor, modified: bool) -> Tuple[Tensor, Tensor, int]:
    """Gathers the arc weights entering each step.

    Returns:
      (X, Y, K): X and Y of shape (K - 1, B, S + 1); ``X[k-1][s]`` is the weight of the symbol
      arc entering cell ``s`` of step ``k`` from cell ``s - 1`` of step ``k - 1`` (``-inf`` for
      ``s = 0``), ``Y[k-1][s]`` the weight of the blank arc from cell ``s`` of step ``k - 1``.
      K is the number of steps (anti-diagonals or frames).
    """
    B, S, _ = px.shape
    T = py.shape[2]
    # Row s of px_by_target holds the arcs that *end* on symbol position s.
    px_by_target = torch.cat([px.new_full((B, 1, px.shape[2]), float("-inf")), px], dim=1)
    if modified:
        X = px_by_target.permute(2, 0, 1).contiguous()
        Y = py.permute(2, 0, 1).contiguous()
        return X, Y, T + 1
    K = S + T + 1
    # Diagonal k of px_by_target: arcs into (s, k - s). py's diagonal k - 1: arcs into (s, k - s).
    X = _skew(px_by_target, K, float("-inf"))[1:]
    Y = _skew(py, K - 1, float("-inf"))
    return X, Y, K


def _arcs_to_grads(
    gx: Tensor, gy: Tensor, modified: bool, px_shape: torch.Size, T: int
) -> Tuple[Tensor, Tensor]:
    """Inverse of :func:`_step_arcs` for gradients: (K-1, B, S+1) arcs -> px, py layouts."""
    if modified:
        px_grad = gx.permute(1, 2, 0)[:, 1:, :]
        py_grad = gy.permute(1, 2, 0)
    else:
        with_first = torch.cat([torch.zeros_like(gx[:1]), gx], dim=0)
        px_grad = _unskew(with_first, px_shape[2])[:, 1:, :]
        py_grad = _unskew(gy, T)
    return px_grad.contiguous(), py_grad.contiguous()


def _forward_and_occupancy(
    px: Tensor,
    py: Tensor,
    s_end: Tensor,
    t_end: Tensor,
    need_grad: bool,
) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
    """Runs the recursion from (0, 0); returns scores (B,) and, if asked, d score / d (px, py)."""
    B, S, _ = px.shape
    T = py.shape[2]
    modified = px.shape[2] == T
    X, Y, K = _step_arcs(px, py, modified)

    # P has an extra leading column (symbol position -1) fixed at -inf so that "the cell below"
    # is a plain slice for every s.
    P = px.new_empty(K, B, S + 2)
    P[:, :, 0] = float("-inf")
    P[0, :, 1:] = float("-inf")
    P[0, :, 1] = 0.0
    # Per-step views made once, so each iteration is three tensor calls and no Python indexing.
    cells, cells_below = P[:, :, 1:].unbind(0), P[:, :, :-1].unbind(0)
    x_arcs, y_arcs = X.unbind(0), Y.unbind(0)
    via_x, via_y = px.new_empty(B, S + 1), px.new_empty(B, S + 1)
    for k in range(1, K):
        torch.add(cells_below[k - 1], x_arcs[k - 1], out=via_x)
        torch.add(cells[k - 1], y_arcs[k - 1], out=via_y)
        torch.logaddexp(via_x, via_y, out=cells[k])

    end_step = t_end if modified else s_end + t_end
    batch = torch.arange(B, device=px.device)
    scores = P[end_step, batch, s_end + 1]
    if not need_grad:
        return scores, None, None

    # Arc posteriors given the arc's destination cell; 0 where that cell is unreachable.
    # An unreachable destination (-inf) only has -inf arcs into it: -inf - -inf = nan there,
    # which must become 0. So must anything computed from padding outside a sequence's box,
    # which may hold any value (it never reaches the score, but 0 * nan would spread).
    dest = P[1:, :, 1:]
    post_x = (P[:-1, :, :-1] + X).sub_(dest).exp_().nan_to_num_(nan=0.0, posinf=0.0)
    post_y = (P[:-1, :, 1:] + Y).sub_(dest).exp_().nan_to_num_(nan=0.0, posinf=0.0)
    del dest, X, Y

    # G[k][s]: d score / d P[k][s]; seeded with 1 at each sequence's final cell.
    G = px.new_zeros(K, B, S + 1)
    G[end_step, batch, s_end] = 1.0
    g, g_lower, g_upper = G.unbind(0), G[:, :, :-1].unbind(0), G[:, :, 1:].unbind(0)
    y_post, x_post = post_y.unbind(0), post_x[:, :, 1:].unbind(0)
    for k in range(K - 1, 0, -1):
        g[k - 1].addcmul_(g[k], y_post[k - 1])
        g_lower[k - 1].addcmul_(g_upper[k], x_post[k - 1])
    gx = post_x.mul_(G[1:])
    gy = post_y.mul_(G[1:])
    px_grad, py_grad = _arcs_to_grads(gx, gy, modified, px.shape, T)
    return scores, px_grad, py_grad


class MutualInformationRecursionFunction(torch.autograd.Function):
    """Autograd wrapper: the forward also runs the reverse sweep (it is needed for training and
    for ``return_grad``), and the backward only scales the stored occupancies by ``ans_grad``."""

    @staticmethod
    def forward(
        ctx,
        px: Tensor,
        py: Tensor,
        pxy_grads: List[Optional[Tensor]],
        boundary: Optional[Tensor],
        return_grad: bool,
    ) -> Tensor:
        B, S, _ = px.shape
        T = py.shape[2]
        if boundary is None:
            s_begin = t_begin = None
            s_end = torch.full((B,), S, dtype=torch.int64, device=px.device)
            t_end = torch.full((B,), T, dtype=torch.int64, device=px.device)
        else:
            boundary = boundary.to(px.device)
            s_begin, t_begin = boundary[:, 0], boundary[:, 1]
            s_end, t_end = boundary[:, 2] - s_begin, boundary[:, 3] - t_begin
            if not bool((s_begin == 0).all() and (t_begin == 0).all()):
                # Move every lattice to start at (0, 0); cells before the start become -inf.
                px = _shift_lattice(px, s_begin, t_begin, float("-inf"))
                py = _shift_lattice(py, s_begin, t_begin, float("-inf"))
            else:
                s_begin = t_begin = None

        need_grad = return_grad or ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        with torch.no_grad():
            scores, px_grad, py_grad = _forward_and_occupancy(px, py, s_end, t_end, need_grad)
        if need_grad and s_begin is not None:
            px_grad = _shift_lattice(px_grad, -s_begin, -t_begin, 0.0)
            py_grad = _shift_lattice(py_grad, -s_begin, -t_begin, 0.0)
        ctx.save_for_backward(px_grad, py_grad)
        pxy_grads[0], pxy_grads[1] = px_grad, py_grad
        return scores

    @staticmethod
    def backward(ctx, ans_grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        px_grad, py_grad = ctx.saved_tensors
        scale = ans_grad.reshape(-1, 1, 1)
        return px_grad * scale, py_grad * scale, None, None, None


def _check_inputs(px: Tensor, py: Tensor, boundary: Optional[Tensor]) -> None:
    if px.ndim != 3 or py.ndim != 3:
        raise ValueError(
            f"mutual_information_recursion: px and py must be 3-D, got {tuple(px.shape)} "
            f"and {tuple(py.shape)}"
        )
    B, S, T1 = px.shape
    T = py.shape[2]
    if T1 not in (T, T + 1) or tuple(py.shape) != (B, S + 1, T):
        raise ValueError(
            "mutual_information_recursion: expected px (B, S, T+1) or (B, S, T) and py "
            f"(B, S+1, T), got px {tuple(px.shape)} and py {tuple(py.shape)}"
        )
    if px.dtype != py.dtype or not px.dtype.is_floating_point:
        raise ValueError(
            f"mutual_information_recursion: px and py must share a float dtype, got {px.dtype} "
            f"and {py.dtype}"
        )
    if boundary is None:
        return
    if boundary.dtype != torch.int64 or tuple(boundary.shape) != (B, 4):
        raise ValueError(
            f"mutual_information_recursion: boundary must be an int64 tensor of shape ({B}, 4), "
            f"got {boundary.dtype} {tuple(boundary.shape)}"
        )
    s_begin, t_begin, s_end, t_end = boundary.unbind(1)
    bad = (s_begin < 0) | (s_begin > s_end) | (s_end > S) | (t_begin < 0)
    bad = bad | (t_begin > t_end) | (t_end > T)
    if bool(bad.any()):
        b = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"mutual_information_recursion: boundary[{b}] = {boundary[b].tolist()} violates "
            f"0 <= s_begin <= s_end <= S={S} and 0 <= t_begin <= t_end <= T={T}"
        )


def mutual_information_recursion(
    px: Tensor,
    py: Tensor,
    boundary: Optional[Tensor] = None,
    return_grad: bool = False,
) -> Union[Tensor, Tuple[Tensor, Tuple[Tensor, Tensor]]]:
    """Log-sum over all monotonic lattice paths (k2's ``mutual_information_recursion``).

    Args:
      px: (B, S, T + 1) for the regular recursion or (B, S, T) for the modified one (one symbol
        per frame at most); ``px[b, s, t]`` is the log-weight of the arc that emits symbol ``s``
        from lattice cell ``(s, t)``. float32 or float64, CPU or CUDA.
      py: (B, S + 1, T); ``py[b, s, t]`` is the log-weight of the arc ``(s, t) -> (s, t + 1)``.
      boundary: optional int64 (B, 4) rows ``[s_begin, t_begin, s_end, t_end]``; default
        ``[0, 0, S, T]`` for every sequence. Entries of px/py outside a sequence's box are never
        read and get zero gradient.
      return_grad: also return ``(px_grad, py_grad)``, the gradients of ``scores.sum()`` with
        respect to px and py, i.e. the arc occupation probabilities (used for pruning).
    Returns:
      scores (B,): ``p[b, s_end, t_end]`` (a log-probability when px/py are normalised), or
      ``(scores, (px_grad, py_grad))`` when ``return_grad``.
    """
    _check_inputs(px, py, boundary)
    pxy_grads: List[Optional[Tensor]] = [None, None]
    scores = MutualInformationRecursionFunction.apply(
        px.contiguous(), py.contiguous(), pxy_grads, boundary, return_grad
    )
    if return_grad:
        return scores, (pxy_grads[0], pxy_grads[1])
    return scores
