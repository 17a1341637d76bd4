"""Every transducer search with a recurrent decoder (``LstmDecoder``: the state lives in the
hypotheses): scores equal the path's log-probability recomputed with the decoder's training
forward (which runs the whole history from the start, so a wrongly carried state shows), beam 1
equals greedy, batched equals one at a time, chunk by chunk equals whole."""

import pytest
import torch
from search_toy_models import TinyJoiner

from icefall_lite.models.lstm_transducer import LstmDecoder
from icefall_lite.search import (
    beam_search,
    fast_beam_search,
    greedy_search,
    greedy_search_chunk,
    init_beam_streams,
    init_greedy_streams,
    modified_beam_search,
    modified_beam_search_chunk,
)
from icefall_lite.streaming import StreamingSearch

VOCAB = 6


class LstmToyTransducer(torch.nn.Module):
    def __init__(self, seed: int, sharpness: float = 3.0):
        super().__init__()
        torch.manual_seed(seed)
        self.decoder = LstmDecoder(VOCAB, 8, blank_id=0, num_layers=2, dropout=0.0)
        self.joiner = TinyJoiner(6, 8, 8, VOCAB)
        with torch.no_grad():
            self.joiner.output_linear.weight.mul_(sharpness)
        self.eval()


def _batch(seed: int, n: int = 3, t: int = 10):
    model = LstmToyTransducer(seed)
    torch.manual_seed(seed + 100)
    enc = torch.randn(n, t, 6)
    lens = torch.tensor([t, t - 3, t - 5][:n])
    return model, enc, lens


@torch.no_grad()
def path_log_prob(model, enc, tokens, timestamps, blank_leaves_frame):
    """log P of one alignment, from the decoder's training forward over the whole history.

    ``blank_leaves_frame``: Graves' topology (every frame is left by a blank, after any
    tokens); else greedy's with one symbol per frame (a token moves to the next frame)."""
    y = torch.tensor([[0] + list(tokens)])
    dec = model.joiner.decoder_proj(model.decoder(y))[0]  # (U + 1, J)
    enc = model.joiner.encoder_proj(enc)  # (T, J)
    total, u = 0.0, 0
    for t in range(enc.size(0)):
        here = [k for k, ts in enumerate(timestamps) if ts == t]
        for k in here:
            logp = model.joiner(enc[t], dec[u], project_input=False).log_softmax(-1)
            total += float(logp[tokens[k]])
            u += 1
        if blank_leaves_frame or not here:
            total += float(model.joiner(enc[t], dec[u], project_input=False).log_softmax(-1)[0])
    return total


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_greedy_score_is_the_path_probability(seed):
    model, enc, lens = _batch(seed)
    results = greedy_search(model, enc, lens, max_sym_per_frame=1)
    assert any(r.tokens for r in results), "degenerate test: nothing emitted"
    for i, r in enumerate(results):
        n = int(lens[i])
        expected = path_log_prob(model, enc[i, :n], r.tokens, r.timestamps, False)
        assert r.score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_beam_one_equals_greedy(seed):
    model, enc, lens = _batch(seed)
    greedy = greedy_search(model, enc, lens, max_sym_per_frame=1)
    beam1 = modified_beam_search(model, enc, lens, beam=1)
    for g, b in zip(greedy, beam1):
        assert (g.tokens, g.timestamps) == (b.tokens, b.timestamps)
        assert g.score == pytest.approx(b.score, abs=1e-4)
    # Graves' search with one hypothesis follows one path, whose log-prob (a blank leaves each
    # frame) is its score.
    for i, r in enumerate(beam_search(model, enc, lens, beam=1, length_norm=False)):
        n = int(lens[i])
        expected = path_log_prob(model, enc[i, :n], r.tokens, r.timestamps, True)
        assert r.score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    "search",
    [
        lambda m, e, n: greedy_search(m, e, n, max_sym_per_frame=2),
        lambda m, e, n: modified_beam_search(m, e, n, beam=3),
        lambda m, e, n: beam_search(m, e, n, beam=3),
    ],
    ids=["greedy", "modified_beam", "beam"],
)
def test_batched_equals_one_at_a_time(search):
    model, enc, lens = _batch(5)
    batched = search(model, enc, lens)
    assert any(r.tokens for r in batched), "degenerate test: nothing emitted"
    for i in range(3):
        n = int(lens[i])
        (alone,) = search(model, enc[i : i + 1, :n], lens[i : i + 1])
        assert (batched[i].tokens, batched[i].timestamps) == (alone.tokens, alone.timestamps)
        assert batched[i].score == pytest.approx(alone.score, abs=1e-4)


def test_wide_beams_beat_greedy_paths():
    # A merged hypothesis' score is at least the best single alignment of its tokens.
    model, enc, lens = _batch(7)
    greedy = greedy_search(model, enc, lens, max_sym_per_frame=1)
    wide = modified_beam_search(model, enc, lens, beam=8, length_norm=False)
    for g, w in zip(greedy, wide):
        assert w.score >= g.score - 1e-6


def test_chunk_by_chunk_equals_whole():
    model, enc, lens = _batch(9, t=11)
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
        g = greedy_streams[i].result(1)
        b = beam_streams[i].result(1)
        assert (g.tokens, g.timestamps) == (whole_greedy[i].tokens, whole_greedy[i].timestamps)
        assert (b.tokens, b.timestamps) == (whole_beam[i].tokens, whole_beam[i].timestamps)


def test_fast_beam_search_refuses_a_recurrent_decoder():
    model, enc, lens = _batch(1)
    with pytest.raises(ValueError, match="needs a stateless decoder"):
        fast_beam_search(model, enc, lens)
    with pytest.raises(ValueError, match="needs a stateless decoder"):
        StreamingSearch(model, "fast_beam_search").init_state()
