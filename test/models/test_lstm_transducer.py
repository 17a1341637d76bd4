"""The LSTM transducer family: preset sizes, the stateful decoder, chunk-wise encoding, and that
both losses train."""

import pytest
import torch

from icefall_lite.models import build_model
from icefall_lite.models.lstm_transducer import (
    LSTM_PRESETS,
    LstmDecoder,
    LstmEncoder,
    count_parameters,
)
from icefall_lite.utils import AttributeDict


def lstm_params(**overrides) -> AttributeDict:
    params = AttributeDict(
        model_family="lstm_transducer",
        vocab_size=16,
        blank_id=0,
        feature_dim=80,
        lstm_preset="cpu",
        encoder_hidden_dim=32,
        pred_net_dim=16,
        joint_dim=24,
        lstm_dropout=0.0,
    )
    params.update(overrides)
    return params


def num_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "preset, vocab_size, published", [("testing", 1024, 49e6), ("base", 8704, 85e6)]
)
def test_reference_presets_have_the_published_sizes(preset, vocab_size, published):
    # The reference's model table: 49 M with sentencepiece 1023, 85 M with 8703 (+ blank).
    arch = LSTM_PRESETS[preset]
    analytic = count_parameters(arch, vocab_size)
    assert abs(analytic - published) / published < 0.03
    params = AttributeDict(
        model_family="lstm_transducer",
        vocab_size=vocab_size,
        blank_id=0,
        lstm_preset=preset,
        rnnt_loss="full",
    )
    with torch.device("meta"):  # no memory, no init time: only the shapes
        model = build_model(params)
    assert num_params(model) == analytic


def test_count_includes_the_pruned_loss_heads():
    params = lstm_params(rnnt_loss="pruned")
    model = build_model(params)
    arch = {k: params[k] for k in LSTM_PRESETS["cpu"]}
    assert num_params(model) == count_parameters(arch, 16, simple_projections=True)


def test_decoder_steps_equal_the_training_forward():
    torch.manual_seed(0)
    decoder = LstmDecoder(vocab_size=10, decoder_dim=8, blank_id=0, num_layers=2).eval()
    y = torch.tensor([[0, 3, 5, 7, 2]])
    whole = decoder(y)
    state = None
    for u in range(y.size(1)):
        out, state = decoder.step(y[:, u], state)
        torch.testing.assert_close(out, whole[:, u])


def test_chunk_wise_encoder_equals_whole_utterance():
    torch.manual_seed(0)
    encoder = LstmEncoder(80, 16, 1, 2, frame_stacking=3, time_reduction=2, dropout=0.0).eval()
    x = torch.randn(2, 6 * 7, 80)
    lens = torch.tensor([42, 42])
    whole, whole_lens, _ = encoder(x, lens)
    assert whole.shape == (2, 7, 16) and whole_lens.tolist() == [7, 7]
    states = encoder.get_init_states(2)
    outs = []
    for start in range(0, 42, 12):
        chunk = x[:, start : start + 12]
        out, _, states = encoder(chunk, torch.full((2,), chunk.size(1)), states)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=1), whole)


def test_output_frames_match_the_encoder():
    model = build_model(lstm_params())
    for t in (5, 6, 37, 100):
        x = torch.randn(1, t, 80)
        _, lens = model.forward_encoder(x, torch.tensor([t]))
        assert int(lens[0]) == model.output_frames(t)


@pytest.mark.parametrize("rnnt_loss", ["pruned", "full"])
def test_a_few_steps_lower_the_loss(rnnt_loss):
    torch.manual_seed(0)
    model = build_model(lstm_params(rnnt_loss=rnnt_loss))
    x = torch.randn(3, 60, 80)
    x_lens = torch.tensor([60, 54, 48])
    y = [[1, 2, 3], [4, 5], [6]]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_value():
        simple, pruned, _ = model(x, x_lens, y, prune_range=3)
        return 0.5 * simple + pruned

    first = float(loss_value())
    for _ in range(15):
        optimizer.zero_grad()
        loss_value().backward()
        optimizer.step()
    assert float(loss_value()) < 0.8 * first


def test_the_full_loss_has_no_simple_heads():
    model = build_model(lstm_params(rnnt_loss="full"))
    assert model.simple_am_proj is None
    simple, full, _ = model(torch.randn(1, 30, 80), torch.tensor([30]), [[1, 2]])
    assert float(simple) == 0.0 and float(full) > 0.0


def test_bad_architecture_flag_is_one_line():
    with pytest.raises(ValueError, match="--num-pre-layers must be >= 1"):
        build_model(lstm_params(num_pre_layers=0))
    with pytest.raises(ValueError, match="--lstm-preset"):
        build_model(lstm_params(lstm_preset="huge"))
