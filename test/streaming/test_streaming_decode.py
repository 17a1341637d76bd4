"""Chunk-wise streaming against simulated streaming on a tiny causal Zipformer: the same encoder
frames, and identical transcripts for every streaming search, with streams joining and leaving
the batch."""

import argparse

import pytest
import torch

from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.models.zipformer.streaming import ZipformerStreamingEncoder
from icefall_lite.search import fast_beam_search, greedy_search, modified_beam_search
from icefall_lite.streaming import (
    LOG_EPS,
    DecodeStream,
    StreamingSearch,
    simulated_streaming_input,
    stack_states,
    streaming_decode,
    unstack_states,
)
from icefall_lite.utils import AttributeDict

CHUNK, LEFT = 16, 64


@pytest.fixture(scope="module")
def causal_model():
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    argv = ["--model-size", "tiny", "--causal", "1", "--decoder-dim", "32", "--joiner-dim", "32"]
    params = AttributeDict(vars(parser.parse_args(argv)))
    params.update(vocab_size=20, blank_id=0, chunk_size=f"{CHUNK}", left_context_frames=f"{LEFT}")
    torch.manual_seed(3)
    model = build_model(params).eval()
    # Sharper joiner logits: the random model then emits varied tokens on some frames, so
    # transcripts differ between utterances and a shifted frame would change them.
    with torch.no_grad():
        model.joiner.output_linear.weight.mul_(8.0)
    return model


def test_stack_unstack_round_trip():
    dims = [1, 0, 0]
    streams = [[torch.randn(4, 1, 3), torch.randn(1, 5), torch.tensor([i])] for i in range(3)]
    stacked = stack_states(streams, dims)
    assert [tuple(s.shape) for s in stacked] == [(4, 3, 3), (3, 5), (3,)]
    for got, want in zip(unstack_states(stacked, dims), streams):
        for a, b in zip(got, want):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match="expected 3"):
        stack_states([streams[0][:2]], dims)


@pytest.mark.parametrize("flush", [True, False])
def test_decode_stream_feeds_overlapping_whole_chunks(flush):
    features = torch.arange(100, dtype=torch.float32).unsqueeze(1).expand(100, 2)
    stream = DecodeStream("u", features, [], None, decode_chunk_len=32, pad_length=13,
                          tail_padding_frames=30, flush_partial_chunk=flush)  # fmt: skip
    # 100 + 30 frames, rounded up to whole chunks: 4 * 32 + 13
    assert stream.features.size(0) == 141
    assert torch.equal(stream.features[:100], features)
    assert torch.all(stream.features[100:] == LOG_EPS)
    chunks = []
    while not stream.done:
        chunks.append(stream.next_chunk())
    assert [int(c[0, 0]) for c in chunks[:3]] == [0, 32, 64]
    assert all(c.size(0) == 45 for c in chunks)
    # with flushing every frame reaches the encoder; sherpa-onnx's rule stops a chunk earlier
    assert len(chunks) == (4 if flush else 3)


def _simulated(model, feats):
    lens = torch.tensor([f.size(0) for f in feats])
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True, padding_value=LOG_EPS)
    x, x_lens = simulated_streaming_input(model.encoder_embed, x, lens, 2 * CHUNK)
    with torch.no_grad():
        return model.forward_encoder(x, x_lens)


def test_chunkwise_encoder_matches_simulated(causal_model):
    torch.manual_seed(0)
    feats = [torch.randn(t, 80) for t in (151, 97)]
    encoder_out, encoder_out_lens = _simulated(causal_model, feats)
    encoder = ZipformerStreamingEncoder(
        causal_model.encoder_embed, causal_model.encoder, CHUNK, LEFT
    )
    for i, f in enumerate(feats):
        stream = DecodeStream("u", f, encoder.get_init_states(1), None,
                              encoder.decode_chunk_len, encoder.pad_length)  # fmt: skip
        outputs = []
        with torch.no_grad():
            while not stream.done:
                chunk = stream.next_chunk()
                x = torch.full((1, stream.chunk_frames, 80), LOG_EPS)
                x[0, : chunk.size(0)] = chunk
                out, out_lens, stream.states = encoder(
                    x, torch.tensor([chunk.size(0)]), stream.states
                )
                outputs.append(out[0, : int(out_lens[0])])
        got = torch.cat(outputs)
        assert got.size(0) == int(encoder_out_lens[i])
        torch.testing.assert_close(got, encoder_out[i, : got.size(0)], rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "method, offline",
    [
        ("greedy_search", lambda m, e, n: greedy_search(m, e, n)),
        ("modified_beam_search", lambda m, e, n: modified_beam_search(m, e, n, beam=4)),
        (
            "fast_beam_search",
            lambda m, e, n: fast_beam_search(m, e, n, beam=4.0, max_states=32, max_contexts=8),
        ),
    ],
)
def test_chunkwise_transcripts_equal_simulated(causal_model, method, offline):
    torch.manual_seed(1)
    lengths = [230, 64, 175, 101, 300]
    feats = [torch.randn(t, 80) for t in lengths]
    encoder_out, encoder_out_lens = _simulated(causal_model, feats)
    expected = offline(causal_model, encoder_out, encoder_out_lens)
    encoder = ZipformerStreamingEncoder(
        causal_model.encoder_embed, causal_model.encoder, CHUNK, LEFT
    )
    search = StreamingSearch(causal_model, method, beam_size=4, beam=4.0, max_states=32)
    # 2 slots for 5 utterances of different lengths: streams join and leave mid-way.
    results, stats = streaming_decode(
        encoder, search, [(f"utt{i}", f) for i, f in enumerate(feats)], num_decode_streams=2
    )
    assert set(stats.chunk_batch_sizes) == {1, 2}
    got = [results[f"utt{i}"].tokens for i in range(len(feats))]
    want = [r.tokens for r in expected]
    assert any(len(t) > 0 for t in want) and len({tuple(t) for t in want}) > 1
    assert got == want
