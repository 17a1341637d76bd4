"""Searches over CTC output: greedy (best path) and prefix beam search, the latter optionally with
shallow fusion of a language model (:class:`~icefall_lite.search.lm_fusion.LmFusion`).

Both take log-probabilities (N, T, V), e.g. ``model.ctc_output(encoder_out)``, and return a token
sequence with, for each token, the frame on which it was first emitted.
"""

import math
from typing import Any, Dict, List, Optional, Tuple

import torch

from icefall_lite.search.hypothesis import DecodingResult, _log_add
from icefall_lite.search.lm_fusion import LmFusion
from icefall_lite.search.transducer_common import check_encoder_out


@torch.no_grad()
def ctc_greedy_search(
    ctc_log_probs: torch.Tensor, encoder_out_lens: torch.Tensor, blank_id: int = 0
) -> List[DecodingResult]:
    """Best path: the most probable symbol on every frame, repeats collapsed, blanks removed.

    Args:
      ctc_log_probs: (N, T, V) log-probabilities.
      encoder_out_lens: (N,) valid frames per utterance.
    Returns:
      N results; ``score`` is the log-probability of the best frame-level path.
    """
    check_encoder_out(ctc_log_probs, encoder_out_lens)
    best_log_probs, best_ids = ctc_log_probs.max(dim=-1)  # (N, T)
    results = []
    for i, n in enumerate(encoder_out_lens.tolist()):
        ids = best_ids[i, :n].tolist()
        tokens, timestamps = [], []
        previous = blank_id
        for t, token in enumerate(ids):
            if token != blank_id and token != previous:
                tokens.append(token)
                timestamps.append(t)
            previous = token
        score = float(best_log_probs[i, :n].double().sum())
        results.append(DecodingResult(tokens=tokens, timestamps=timestamps, score=score))
    return results


def _prefix_beam_search_one(
    log_probs: torch.Tensor,
    beam: int,
    blank_id: int,
    prune_threshold: float,
    fusion: Optional[LmFusion] = None,
) -> DecodingResult:
    """``log_probs``: (T, V) of one utterance. Each prefix keeps two scores: ending in blank and
    ending in its last token, so repeats separated by blank are told apart from held tokens.
    With ``fusion``, each prefix also carries its LM score and state (a function of the prefix
    alone, computed once when the prefix first appears); prefixes are ranked by acoustic + LM."""
    neg_inf = -math.inf
    # prefix -> [log p(ends in blank), log p(ends in last token)], and prefix -> timestamps
    beams: Dict[Tuple[int, ...], List[float]] = {(): [0.0, neg_inf]}
    times: Dict[Tuple[int, ...], Tuple[List[int], float]] = {(): ([], 0.0)}
    # prefix -> (summed LM score, LM state)
    lm_info: Dict[Tuple[int, ...], Tuple[float, Any]] = {}
    if fusion is not None:
        lm_info[()] = (0.0, fusion.initial_state())

    def lm_score(prefix: Tuple[int, ...]) -> float:
        if fusion is None:
            return 0.0
        info = lm_info.get(prefix)
        if info is None:
            parent_score, parent_state = lm_info[prefix[:-1]]
            delta, state = fusion.extend(parent_state, prefix[-1])
            info = (parent_score + delta, state)
            lm_info[prefix] = info
        return info[0]

    frames = log_probs.double().cpu()
    vocab_size = frames.size(1)
    for t in range(frames.size(0)):
        frame = frames[t]
        # Only symbols within reach are worth extending with.
        k = min(beam, vocab_size)
        top_values, top_ids = frame.topk(k)
        candidates = [
            (s, v)
            for s, v in zip(top_ids.tolist(), top_values.tolist())
            if v >= float(top_values[0]) - prune_threshold
        ]
        next_beams: Dict[Tuple[int, ...], List[float]] = {}

        def add(prefix: Tuple[int, ...], slot: int, value: float) -> None:
            entry = next_beams.setdefault(prefix, [neg_inf, neg_inf])
            entry[slot] = _log_add(entry[slot], value)

        for prefix, (p_blank, p_token) in beams.items():
            p_total = _log_add(p_blank, p_token)
            last = prefix[-1] if prefix else None
            for symbol, value in candidates:
                if symbol == blank_id:
                    add(prefix, 0, p_total + value)
                elif symbol == last:
                    add(prefix, 1, p_token + value)  # held token: same prefix
                    extended = prefix + (symbol,)  # token repeated after a blank
                    add(extended, 1, p_blank + value)
                    _note_time(times, extended, prefix, t, p_blank + value)
                else:
                    extended = prefix + (symbol,)
                    add(extended, 1, p_total + value)
                    _note_time(times, extended, prefix, t, p_total + value)
        ranked = sorted(
            next_beams.items(), key=lambda kv: _log_add(*kv[1]) + lm_score(kv[0]), reverse=True
        )
        beams = dict(ranked[:beam])

    def final_score(item) -> float:
        prefix, scores = item
        score = _log_add(*scores)
        if fusion is not None:
            score += lm_score(prefix) + fusion.final(lm_info[prefix][1])
        return score

    best_prefix, best_scores = max(beams.items(), key=final_score)
    timestamps = times[best_prefix][0] if best_prefix else []
    score = final_score((best_prefix, best_scores))
    return DecodingResult(tokens=list(best_prefix), timestamps=list(timestamps), score=score)


def _note_time(
    times: Dict[Tuple[int, ...], Tuple[List[int], float]],
    extended: Tuple[int, ...],
    prefix: Tuple[int, ...],
    t: int,
    score: float,
) -> None:
    """Remember when ``extended``'s last token started, keeping the most probable way of reaching
    it (the same prefix can be reached on several frames)."""
    old = times.get(extended)
    if old is None or score > old[1]:
        times[extended] = (times.get(prefix, ([], 0.0))[0] + [t], score)


@torch.no_grad()
def ctc_prefix_beam_search(
    ctc_log_probs: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    beam: int = 4,
    blank_id: int = 0,
    prune_threshold: float = 20.0,
    fusion: Optional[LmFusion] = None,
) -> List[DecodingResult]:
    """CTC prefix beam search: hypotheses are label prefixes, scored by the total probability of
    all frame-level paths that collapse to them (plus, with ``fusion``, ``lm_scale`` times the
    LM log-probability of the prefix and the word insertion bonus; the LM is token-level, see
    ``icefall_lite.lm.TokenNgramLm``, so every extension is scored at once).

    Args:
      ctc_log_probs: (N, T, V) log-probabilities.
      encoder_out_lens: (N,) valid frames per utterance.
      beam: prefixes kept per frame; also the number of symbols tried per frame.
      prune_threshold: symbols more than this below the frame's best are not tried.
      fusion: shallow fusion with a language model (``--lm-scale``, ``--word-insertion-bonus``).
    Returns:
      N results; ``score`` is the prefix's total log-probability (fused score with an LM,
      end of sentence included).
    """
    check_encoder_out(ctc_log_probs, encoder_out_lens)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    return [
        _prefix_beam_search_one(ctc_log_probs[i, :n], beam, blank_id, prune_threshold, fusion)
        for i, n in enumerate(encoder_out_lens.tolist())
    ]
