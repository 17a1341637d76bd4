"""Greedy, modified beam and Graves beam search against toy models with known answers and against
exhaustive enumeration."""

import itertools
import math
import random

import pytest
import torch
from search_toy_models import (
    RandomTransducer,
    ScriptedTransducer,
    enumerate_one_symbol_alignments,
    log_sum,
    scripted_encoder_out,
    transducer_sequence_log_prob,
)

from icefall_lite.search import (
    beam_search,
    greedy_search,
    greedy_search_chunk,
    init_beam_streams,
    init_greedy_streams,
    modified_beam_search,
    modified_beam_search_chunk,
)

SCRIPT = [3, 1, 4, 2, 5]
SCRIPT_FRAMES = [0, 2, 3, 6, 7]


def _scripted():
    model = ScriptedTransducer(SCRIPT, vocab_size=7)
    enc = scripted_encoder_out(SCRIPT, SCRIPT_FRAMES, num_frames=9, vocab=7)
    return model, enc, torch.tensor([9])


@pytest.mark.parametrize(
    "search",
    [
        lambda m, e, n: greedy_search(m, e, n, max_sym_per_frame=1),
        lambda m, e, n: greedy_search(m, e, n, max_sym_per_frame=3),
        lambda m, e, n: modified_beam_search(m, e, n, beam=4),
        lambda m, e, n: beam_search(m, e, n, beam=4),
    ],
    ids=["greedy", "greedy_max_sym_3", "modified_beam", "beam"],
)
def test_each_search_finds_the_scripted_path(search):
    model, enc, lens = _scripted()
    (result,) = search(model, enc, lens)
    assert result.tokens == SCRIPT
    assert result.timestamps == SCRIPT_FRAMES
    assert result.score < 0


def _random_batch(n=3, t=7, seed=1, vocab_size=5):
    torch.manual_seed(seed)
    model = RandomTransducer(vocab_size=vocab_size).eval()
    enc = torch.randn(n, t, 6)
    lens = torch.tensor([t, t - 2, t - 4][:n])
    return model, enc, lens


def test_greedy_equals_modified_beam_search_with_beam_one():
    model, enc, lens = _random_batch(n=3, t=12, seed=3)
    greedy = greedy_search(model, enc, lens, max_sym_per_frame=1)
    beam1 = modified_beam_search(model, enc, lens, beam=1)
    assert any(r.tokens for r in greedy), "degenerate test: nothing emitted"
    for g, b in zip(greedy, beam1):
        assert g.tokens == b.tokens
        assert g.timestamps == b.timestamps
        assert g.score == pytest.approx(b.score, abs=1e-4)


@pytest.mark.parametrize("length_norm", [False, True])
def test_wide_modified_beam_search_matches_exhaustive_enumeration(length_norm):
    torch.manual_seed(7)
    model = RandomTransducer(vocab_size=3, sharpness=1.0).eval()
    enc = torch.randn(1, 4, 6)
    sequences = enumerate_one_symbol_alignments(model, enc)
    totals = {seq: log_sum(scores) for seq, scores in sequences.items()}
    context_size = model.decoder.context_size

    def criterion(seq):
        return totals[seq] / (len(seq) + context_size) if length_norm else totals[seq]

    expected = max(totals, key=criterion)
    (result,) = modified_beam_search(
        model, enc, torch.tensor([4]), beam=len(totals), length_norm=length_norm
    )
    assert tuple(result.tokens) == expected
    assert result.score == pytest.approx(totals[expected], abs=1e-4)
    # The result really is the unique optimum, not a tie the test would pass by luck.
    runner_up = sorted((criterion(s) for s in totals), reverse=True)[1]
    assert criterion(expected) > runner_up + 1e-6


@pytest.mark.parametrize(
    "search",
    [
        lambda m, e, n: greedy_search(m, e, n, max_sym_per_frame=1),
        lambda m, e, n: greedy_search(m, e, n, max_sym_per_frame=2),
        lambda m, e, n: modified_beam_search(m, e, n, beam=3),
        lambda m, e, n: beam_search(m, e, n, beam=3),
    ],
    ids=["greedy", "greedy_max_sym_2", "modified_beam", "beam"],
)
def test_batched_equals_one_at_a_time(search):
    model, enc, lens = _random_batch(n=3, t=10, seed=5)
    batched = search(model, enc, lens)
    for i in range(3):
        n = int(lens[i])
        (alone,) = search(model, enc[i : i + 1, :n], lens[i : i + 1])
        assert batched[i].tokens == alone.tokens
        assert batched[i].timestamps == alone.timestamps
        assert batched[i].score == pytest.approx(alone.score, abs=1e-4)


def test_chunked_decoding_equals_whole_utterance():
    model, enc, lens = _random_batch(n=3, t=11, seed=9)
    whole_greedy = greedy_search(model, enc, lens, max_sym_per_frame=2)
    whole_beam = modified_beam_search(model, enc, lens, beam=3)

    greedy_streams = init_greedy_streams(model, 3)
    beam_streams = init_beam_streams(model, 3)
    for start in range(0, enc.size(1), 4):
        chunk = enc[:, start : start + 4]
        chunk_lens = (lens - start).clamp(min=0, max=chunk.size(1))
        greedy_search_chunk(model, chunk, chunk_lens, greedy_streams, max_sym_per_frame=2)
        modified_beam_search_chunk(model, chunk, chunk_lens, beam_streams, beam=3)
    for i in range(3):
        chunked = greedy_streams[i].result(model.decoder.context_size)
        assert (chunked.tokens, chunked.timestamps) == (
            whole_greedy[i].tokens,
            whole_greedy[i].timestamps,
        )
        chunked = beam_streams[i].result(model.decoder.context_size)
        assert (chunked.tokens, chunked.timestamps) == (
            whole_beam[i].tokens,
            whole_beam[i].timestamps,
        )


def test_timestamps_are_valid_frames():
    model, enc, lens = _random_batch(n=3, t=12, seed=11)
    for results in (
        greedy_search(model, enc, lens, max_sym_per_frame=3),
        modified_beam_search(model, enc, lens, beam=4),
        beam_search(model, enc, lens, beam=3, max_sym_per_frame=3),
    ):
        for r, n in zip(results, lens.tolist()):
            assert len(r.timestamps) == len(r.tokens)
            assert r.timestamps == sorted(r.timestamps)
            assert all(0 <= t < n for t in r.timestamps)
            assert 0 not in r.tokens and math.isfinite(r.score)


def test_wide_beam_search_finds_the_most_probable_sequence_and_beats_greedy():
    """Graves' beam search, wide, against every output sequence of up to 8 tokens scored by the
    forward recursion of its topology; the sequences left out hold less probability in total
    than the winner, so none of them can beat it. Here greedy's answer is worse."""
    torch.manual_seed(14)
    model = RandomTransducer(vocab_size=3, sharpness=3.0, blank_bias=2.0).eval()
    enc, lens = torch.randn(1, 5, 6), torch.tensor([5])
    totals = {
        seq: transducer_sequence_log_prob(model, enc, seq)
        for n in range(9)
        for seq in itertools.product((1, 2), repeat=n)
    }
    expected = max(totals, key=totals.get)
    left_out = 1.0 - sum(math.exp(v) for v in totals.values())
    assert left_out < math.exp(totals[expected]), "enumeration too short to know the optimum"
    ranked = sorted(totals.values(), reverse=True)
    assert ranked[0] > ranked[1] + 0.1 and len(expected) >= 2
    (beam,) = beam_search(model, enc, lens, beam=64, length_norm=False)
    assert tuple(beam.tokens) == expected
    # Nothing was pruned that mattered: the hypothesis carries its sequence's whole mass.
    assert beam.score == pytest.approx(totals[expected], abs=1e-4)
    (greedy,) = greedy_search(model, enc, lens, max_sym_per_frame=1)
    assert tuple(greedy.tokens) != expected
    assert totals[tuple(greedy.tokens)] < totals[expected] - 0.5


@pytest.mark.parametrize("seed", range(8))
def test_beam_search_with_beam_one_equals_greedy_on_decisive_models(seed):
    """With one hypothesis Graves' search follows greedy's path wherever each step is near
    certain and blank ends every frame (in general the two differ: Graves pays a blank to
    leave each frame, greedy's max-sym-per-frame does not). Random scripts, several tokens on
    one frame, emitted frame by frame; batched and one at a time."""
    rng = random.Random(seed)
    vocab, num_frames = 9, 10
    script = rng.sample(range(1, vocab), 6)
    frames = sorted(rng.choices(range(num_frames), k=len(script)))
    model = ScriptedTransducer(script, vocab_size=vocab)
    enc = scripted_encoder_out(script, frames, num_frames, vocab)
    # A second utterance: the first half of the script, then silence.
    half = scripted_encoder_out(script[:3], frames[:3], num_frames, vocab)
    enc, lens = torch.cat([enc, half]), torch.tensor([num_frames, num_frames])
    greedy = greedy_search(model, enc, lens, max_sym_per_frame=len(script))
    beam1 = beam_search(model, enc, lens, beam=1, max_sym_per_frame=len(script))
    assert greedy[0].tokens == script and greedy[1].tokens == script[:3]
    for g, b in zip(greedy, beam1):
        assert (b.tokens, b.timestamps) == (g.tokens, g.timestamps)


def test_beam_search_emits_at_most_max_sym_per_frame_tokens_on_a_frame():
    # Seed 8 is a case where a hypothesis is reached on a frame both from the frame's start and
    # by an emission on it (merged: it must keep the smaller allowance); the others add cover.
    for seed in [8] + list(range(30)):
        torch.manual_seed(seed)
        model = RandomTransducer(vocab_size=3, sharpness=1.0).eval()
        enc = torch.randn(1, 5, 6)
        (result,) = beam_search(model, enc, torch.tensor([5]), beam=8, max_sym_per_frame=1)
        assert len(set(result.timestamps)) == len(result.timestamps), (seed, result)


def test_bad_shapes_raise_clear_errors():
    model, enc, lens = _random_batch()
    with pytest.raises(ValueError, match="encoder_out_lens"):
        greedy_search(model, enc, lens[:2])
    with pytest.raises(ValueError, match="beam"):
        modified_beam_search(model, enc, lens, beam=0)
