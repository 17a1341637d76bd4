"""Slow, obviously-correct references for the RNN-T tests: explicit sums over alignments."""

import itertools
import math
from typing import List, Optional

import torch
from torch import Tensor


def lattice_score_by_cells(
    px: Tensor, py: Tensor, s_begin: int, t_begin: int, s_end: int, t_end: int
) -> Tensor:
    """Mutual-information recursion for one sequence, cell by cell (px (S, T[+1]), py (S+1, T)).

    Unreachable cells are left out of the log-sum instead of being -inf, so autograd through this
    reference has no nan.
    """
    modified = px.shape[1] == py.shape[1]
    p = {}
    for s in range(s_begin, s_end + 1):
        for t in range(t_begin, t_end + 1):
            if (s, t) == (s_begin, t_begin):
                p[s, t] = px.new_zeros(())
                continue
            terms = []
            if s > s_begin:
                prev = (s - 1, t - 1) if modified else (s - 1, t)
                if prev in p:
                    terms.append(p[prev] + px[prev[0], prev[1]])
            if t > t_begin and (s, t - 1) in p:
                terms.append(p[s, t - 1] + py[s, t - 1])
            if terms:
                p[s, t] = torch.logsumexp(torch.stack(terms), dim=0)
    if (s_end, t_end) not in p:
        return px.new_tensor(-math.inf) + 0 * px.sum() + 0 * py.sum()
    return p[s_end, t_end] + 0 * px.sum() + 0 * py.sum()


def alignment_log_likelihood(
    logits: Tensor,
    symbols: List[int],
    blank: int,
    rnnt_type: str,
    delay_penalty: float = 0.0,
    allowed: Optional[Tensor] = None,
) -> Tensor:
    """log sum over every alignment of ``symbols`` to ``T`` frames, enumerated one by one.

    Args:
      logits: (T, S + 1, C) joiner output of one utterance.
      symbols: the S symbol ids.
      rnnt_type: "regular" (a symbol keeps the frame, T blanks in total), "modified" (each
        frame emits exactly one token, blank or symbol) or "constrained" (modified, plus the
        symbol pays for the blank of the next context on the same frame).
      delay_penalty: adds ``delay_penalty * ((T - 1) / 2 - t)`` per symbol emitted on frame t.
      allowed: optional (T, S + 1) bool, the lattice cells a pruned joiner computed: only
        alignments that read logits at allowed cells only count (every move leaves a cell and
        reads its logits; a constrained symbol also reads the blank of the cell above).
    """
    T, S1, _ = logits.shape
    S = S1 - 1
    logp = logits.log_softmax(dim=-1)
    scores = []
    if rnnt_type == "regular":
        # An alignment is the order of S symbol moves and T blank moves, ending with a blank.
        for symbol_slots in itertools.combinations(range(S + T - 1), S):
            s = t = 0
            score = logits.new_zeros(())
            inside = True
            for move in range(S + T):
                inside = inside and (allowed is None or bool(allowed[t, s]))
                if move in symbol_slots:
                    score = score + logp[t, s, symbols[s]] + delay_penalty * ((T - 1) / 2 - t)
                    s += 1
                else:
                    score = score + logp[t, s, blank]
                    t += 1
            if inside:
                scores.append(score)
    else:
        # An alignment is the set of S frames that emit a symbol.
        for symbol_frames in itertools.combinations(range(T), S):
            s = 0
            score = logits.new_zeros(())
            inside = True
            for t in range(T):
                inside = inside and (allowed is None or bool(allowed[t, s]))
                if t in symbol_frames:
                    score = score + logp[t, s, symbols[s]] + delay_penalty * ((T - 1) / 2 - t)
                    if rnnt_type == "constrained":
                        score = score + logp[t, s + 1, blank]
                        inside = inside and (allowed is None or bool(allowed[t, s + 1]))
                    s += 1
                else:
                    score = score + logp[t, s, blank]
            if inside:
                scores.append(score)
    if not scores:
        return logits.new_tensor(-math.inf)
    return torch.logsumexp(torch.stack(scores), dim=0)
