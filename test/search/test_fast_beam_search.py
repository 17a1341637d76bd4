"""Fast beam search (built-in lattice) against exhaustive enumeration and toy models."""

import pytest
import torch
from search_toy_models import (
    RandomTransducer,
    ScriptedTransducer,
    enumerate_one_symbol_alignments,
    scripted_encoder_out,
)

from icefall_lite.search import (
    fast_beam_search,
    fast_beam_search_chunk,
    fast_beam_search_nbest,
    greedy_search,
    init_fast_beam_streams,
)


@pytest.fixture(autouse=True)
def _builtin_backend(monkeypatch):
    monkeypatch.setenv("ICEFALL_LITE_FAST_BEAM_BACKEND", "builtin")


def test_scripted_path_is_found():
    script, frames = [3, 1, 4, 2, 5], [0, 2, 3, 6, 7]
    model = ScriptedTransducer(script, vocab_size=7)
    enc = scripted_encoder_out(script, frames, num_frames=9, vocab=7)
    for search in (fast_beam_search, fast_beam_search_nbest):
        (result,) = search(model, enc, torch.tensor([9]), beam=8.0, max_states=8, max_contexts=4)
        assert (result.tokens, result.timestamps) == (script, frames)


def test_unpruned_search_returns_the_best_alignment():
    """With no effective pruning, states keyed by decoder history make the search exact Viterbi
    over one-symbol-per-frame alignments."""
    torch.manual_seed(3)
    model = RandomTransducer(vocab_size=3, sharpness=1.0).eval()
    enc = torch.randn(1, 5, 6)
    alignments = enumerate_one_symbol_alignments(model, enc)
    best_per_seq = {seq: max(scores) for seq, scores in alignments.items()}
    expected = max(best_per_seq, key=best_per_seq.get)
    (result,) = fast_beam_search(
        model, enc, torch.tensor([5]), beam=1000.0, max_states=1000, max_contexts=1000
    )
    assert tuple(result.tokens) == expected
    assert result.score == pytest.approx(best_per_seq[expected], abs=1e-4)


def test_nbest_score_is_the_best_alignment_of_its_sequence():
    torch.manual_seed(4)
    model = RandomTransducer(vocab_size=3, sharpness=1.0).eval()
    enc = torch.randn(1, 5, 6)
    alignments = enumerate_one_symbol_alignments(model, enc)
    (one_best,) = fast_beam_search(model, enc, torch.tensor([5]), beam=1000.0, max_states=1000)
    (nbest,) = fast_beam_search_nbest(
        model, enc, torch.tensor([5]), beam=1000.0, max_states=1000, num_paths=50, nbest_scale=1.0
    )
    assert nbest.score == pytest.approx(max(alignments[tuple(nbest.tokens)]), abs=1e-4)
    assert nbest.score <= one_best.score + 1e-6


def test_tight_pruning_keeps_at_most_max_states():
    torch.manual_seed(5)
    model = RandomTransducer(vocab_size=6, sharpness=0.5).eval()
    enc = torch.randn(2, 8, 6)
    lens = torch.tensor([8, 6])
    streams = init_fast_beam_streams(model, 2)
    fast_beam_search_chunk(model, enc, lens, streams, beam=50.0, max_states=3, max_contexts=3)
    for stream, n in zip(streams, lens.tolist()):
        assert stream.num_frames == n
        assert all(s.numel() <= 3 for s in stream.frame_scores)
        assert stream.scores.numel() <= 3
    # max_states=1 (and a beam that never prunes) leaves only the greedy path.
    (narrow,) = fast_beam_search(model, enc[:1], lens[:1], beam=50.0, max_states=1)
    (greedy,) = greedy_search(model, enc[:1], lens[:1], max_sym_per_frame=1)
    assert (narrow.tokens, narrow.timestamps) == (greedy.tokens, greedy.timestamps)


def test_batched_and_chunked_equal_one_at_a_time():
    torch.manual_seed(6)
    model = RandomTransducer(vocab_size=5).eval()
    enc = torch.randn(3, 10, 6)
    lens = torch.tensor([10, 7, 4])
    settings = dict(beam=4.0, max_states=6, max_contexts=4)
    batched = fast_beam_search(model, enc, lens, **settings)
    streams = init_fast_beam_streams(model, 3)
    for start in range(0, 10, 3):
        chunk_lens = (lens - start).clamp(min=0, max=3)
        fast_beam_search_chunk(model, enc[:, start : start + 3], chunk_lens, streams, **settings)
    for i in range(3):
        n = int(lens[i])
        (alone,) = fast_beam_search(model, enc[i : i + 1, :n], lens[i : i + 1], **settings)
        chunked = streams[i].result(blank_id=0)
        for other in (batched[i], chunked):
            assert (other.tokens, other.timestamps) == (alone.tokens, alone.timestamps)
            assert other.score == pytest.approx(alone.score, abs=1e-6)


def test_sequence_scores_in_the_lattice_match_enumeration():
    """The constrained Viterbi used by the n-best search, for every sequence of the space."""
    from icefall_lite.search.fast_beam_search import _best_alignment_scores

    torch.manual_seed(8)
    model = RandomTransducer(vocab_size=3, sharpness=1.0).eval()
    enc = torch.randn(1, 4, 6)
    alignments = enumerate_one_symbol_alignments(model, enc)
    (stream,) = init_fast_beam_streams(model, 1)
    fast_beam_search_chunk(model, enc, torch.tensor([4]), [stream], beam=1e3, max_states=1000)
    sequences = sorted(alignments) + [(1, 1, 1, 1, 1)]  # the last is impossible in 4 frames
    scores = _best_alignment_scores(stream, sequences, vocab_size=3, blank_id=0)
    for seq, score in zip(sequences, scores.tolist()):
        if seq in alignments:
            assert score == pytest.approx(max(alignments[seq]), abs=1e-4)
        else:
            assert score == float("-inf")
