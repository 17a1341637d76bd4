"""CTC greedy and prefix beam search against known paths and brute-force enumeration."""

import itertools
import math

import pytest
import torch

from icefall_lite.search import ctc_greedy_search, ctc_prefix_beam_search


def _collapse(path, blank=0):
    out, previous = [], blank
    for s in path:
        if s != blank and s != previous:
            out.append(s)
        previous = s
    return tuple(out)


def _peaked(frame_symbols, vocab=5, peak=6.0):
    logits = torch.zeros(1, len(frame_symbols), vocab)
    for t, s in enumerate(frame_symbols):
        logits[0, t, s] = peak
    return logits.log_softmax(-1)


def test_greedy_collapses_repeats_and_keeps_blank_separated_repeats():
    # frames: a a _ a b b _ _ c  ->  a a b c, first frames 0, 3, 4, 8
    log_probs = _peaked([1, 1, 0, 1, 2, 2, 0, 0, 3])
    (result,) = ctc_greedy_search(log_probs, torch.tensor([9]))
    assert result.tokens == [1, 1, 2, 3]
    assert result.timestamps == [0, 3, 4, 8]
    assert result.score == pytest.approx(float(log_probs.max(-1).values.sum()), abs=1e-5)


def test_lengths_cut_padding_frames():
    log_probs = torch.cat([_peaked([1, 0, 2, 3, 4]), _peaked([2, 2, 0, 0, 0])])
    results = ctc_greedy_search(log_probs, torch.tensor([3, 2]))
    assert [r.tokens for r in results] == [[1, 2], [2]]
    results = ctc_prefix_beam_search(log_probs, torch.tensor([3, 2]), beam=3)
    assert [r.tokens for r in results] == [[1, 2], [2]]
    assert results[0].timestamps == [0, 2]


def test_wide_prefix_beam_search_matches_enumeration():
    torch.manual_seed(2)
    vocab, num_frames = 3, 5
    log_probs = (torch.randn(1, num_frames, vocab) * 1.5).log_softmax(-1)
    totals = {}
    for path in itertools.product(range(vocab), repeat=num_frames):
        score = sum(float(log_probs[0, t, s]) for t, s in enumerate(path))
        totals.setdefault(_collapse(path), []).append(score)
    totals = {k: math.log(sum(math.exp(v) for v in vs)) for k, vs in totals.items()}
    expected = max(totals, key=totals.get)
    (result,) = ctc_prefix_beam_search(
        log_probs, torch.tensor([num_frames]), beam=len(totals), prune_threshold=1e9
    )
    assert tuple(result.tokens) == expected
    assert result.score == pytest.approx(totals[expected], abs=1e-6)
    # Here the most probable prefix is not the best path's collapse, so a search that
    # returned greedy's answer (or kept one prefix per frame) would fail.
    (greedy,) = ctc_greedy_search(log_probs, torch.tensor([num_frames]))
    assert tuple(greedy.tokens) != expected
    ranked = sorted(totals.values(), reverse=True)
    assert ranked[0] > ranked[1] + 1e-6


def test_prefix_beam_prefers_summed_paths_over_single_best_path():
    # Frame-level best path is "_ _ _" (blank p=0.4 each), but "1" collects many paths.
    probs = torch.tensor([[0.4, 0.35, 0.25]] * 3).log().unsqueeze(0)
    (greedy,) = ctc_greedy_search(probs, torch.tensor([3]))
    (beam,) = ctc_prefix_beam_search(probs, torch.tensor([3]), beam=8)
    assert greedy.tokens == []
    assert beam.tokens != []
    assert beam.score > math.log(0.4**3)
