"""Streaming normalisation: the running statistics, and chunk-wise decoding with them equals
whole-utterance (simulated) decoding with them, for the LSTM transducer."""

import pytest
import torch

from icefall_lite.models import build_model
from icefall_lite.search import greedy_search
from icefall_lite.streaming import (
    FeatureNorm,
    StreamingNormalizer,
    StreamingSearch,
    load_mel_stats,
    mel_stats,
    pad_to_chunks,
    save_mel_stats,
    streaming_decode,
)
from icefall_lite.utils import AttributeDict


def _features(seed, lengths):
    g = torch.Generator().manual_seed(seed)
    # log-mel-like: an offset and scale per bin, not zero mean / unit variance
    offset = torch.linspace(-8, -2, 80)
    return [offset + 2.0 * torch.randn(n, 80, generator=g) for n in lengths]


def test_running_statistics_follow_the_recurrence():
    mean, var = torch.zeros(2), torch.ones(2)
    norm = StreamingNormalizer(mean, var, alpha=0.5, eps=0.0)
    out = norm(torch.tensor([[2.0, 0.0], [2.0, 4.0]]))
    # bin 0, frame 0: mean 0.5 * 0 + 0.5 * 2 = 1, var 0.5 * 1 + 0.5 * (2 - 1)^2 = 1 -> y = 1;
    # bin 1, frame 0: mean 0, var 0.5 -> y = 0; frame 1: mean 0.5 * 0 + 0.5 * 4 = 2.
    assert out[0].tolist() == pytest.approx([1.0, 0.0])
    assert norm.mean.tolist() == pytest.approx([1.5, 2.0])
    assert out[1, 1] == pytest.approx((4.0 - 2.0) / (0.5 * 0.5 + 0.5 * 4.0) ** 0.5)
    # Chunk by chunk = whole: the same operations in the same order.
    x = _features(0, [37])[0]
    whole = StreamingNormalizer(x.mean(0), x.var(0), alpha=0.01)(x)
    chunked_norm = StreamingNormalizer(x.mean(0), x.var(0), alpha=0.01)
    chunked = torch.cat([chunked_norm(x[i : i + 6]) for i in range(0, 37, 6)])
    assert torch.equal(whole, chunked)


def test_reset_and_carry_over():
    a, b = _features(1, [20, 20])
    stats = StreamingNormalizer(torch.full((80,), -5.0), torch.full((80,), 4.0), alpha=0.1)
    reset = FeatureNorm(stats, reset=True)
    assert torch.equal(reset.whole(b), FeatureNorm(stats).whole(b))
    carry = FeatureNorm(stats, reset=False)
    carry.whole(a)
    assert not torch.allclose(carry.whole(b), reset.whole(b))


def test_mel_stats_file_round_trip(tmp_path):
    feats = _features(2, [10, 30])
    mean, var, n = mel_stats(feats)
    assert n == 40
    torch.testing.assert_close(mean, torch.cat(feats).double().mean(0))
    torch.testing.assert_close(var, torch.cat(feats).double().var(0, unbiased=False))
    save_mel_stats(tmp_path / "stats.pt", mean, var, n)
    loaded_mean, loaded_var = load_mel_stats(tmp_path / "stats.pt")
    assert torch.equal(loaded_mean, mean) and torch.equal(loaded_var, var)
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("method", ["greedy_search", "modified_beam_search"])
@pytest.mark.parametrize("use_running_stats", [True, False])
def test_chunk_wise_equals_simulated_with_stream_normalisation(method, use_running_stats):
    torch.manual_seed(0)
    params = AttributeDict(
        model_family="lstm_transducer",
        vocab_size=12,
        blank_id=0,
        lstm_preset="cpu",
        encoder_hidden_dim=32,
        pred_net_dim=16,
        joint_dim=16,
        lstm_dropout=0.0,
    )
    model = build_model(params).eval()
    with torch.no_grad():  # emit something: make blank less dominant
        model.joiner.output_linear.bias[0] -= 2.0
    lengths = [95, 60, 143]
    utterances = _features(3, lengths)
    mean, var, _ = mel_stats(_features(4, [200]))
    stats = StreamingNormalizer(mean, var, alpha=0.02) if use_running_stats else None

    encoder = model.streaming_encoder(chunk_size=4)  # 24 fbank frames per chunk
    search = StreamingSearch(model, method, beam_size=3)
    chunked, _ = streaming_decode(
        encoder,
        search,
        [(f"u{i}", x) for i, x in enumerate(utterances)],
        num_decode_streams=2,
        tail_padding_frames=0,
        feature_norm=FeatureNorm(stats, reset=True),
    )

    norm = FeatureNorm(stats, reset=True)
    normalized = [norm.whole(x) for x in utterances]
    batch = torch.nn.utils.rnn.pad_sequence(normalized, batch_first=True)
    feats, lens = pad_to_chunks(
        batch, torch.tensor(lengths), encoder.decode_chunk_len, 0, 0, pad_value=0.0
    )
    with torch.no_grad():
        enc, enc_lens = model.forward_encoder(feats, lens, normalize=False)
    if method == "greedy_search":
        whole = greedy_search(model, enc, enc_lens)
    else:
        from icefall_lite.search import modified_beam_search

        whole = modified_beam_search(model, enc, enc_lens, beam=3)
    assert any(r.tokens for r in whole), "degenerate test: nothing emitted"
    for i, expected in enumerate(whole):
        got = chunked[f"u{i}"]
        assert (got.tokens, got.timestamps) == (expected.tokens, expected.timestamps)
        assert got.score == pytest.approx(expected.score, abs=1e-3)
