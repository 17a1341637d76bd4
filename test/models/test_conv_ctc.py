"""Jasper / QuartzNet CTC models: published sizes, the model interface, padding, learning."""

import pytest
import torch

from icefall_lite.models.conv_ctc import (
    CONV_CTC_PRESETS,
    BlockSpec,
    ConvCtcConfig,
    ConvCtcModel,
    build_conv_ctc_model,
    conv_ctc_config,
)
from icefall_lite.models.interface import AsrModelInterface, has_ctc_head, has_transducer

# Published parameter counts (NeMo: 64-bin features, 28 characters + blank).
PUBLISHED = {"jasper10x5dr": 333e6, "quartznet5x5": 6.7e6, "quartznet15x5": 18.9e6}


@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_published_parameter_counts(preset):
    # The meta device allocates nothing: Jasper's 333M parameters cost no memory or time.
    with torch.device("meta"):
        model = build_conv_ctc_model({"conv_preset": preset, "feature_dim": 64, "vocab_size": 29})
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - PUBLISHED[preset]) / PUBLISHED[preset] < 0.02, count


def test_cpu_preset_is_small_and_strided():
    with torch.device("meta"):
        model = build_conv_ctc_model({"conv_preset": "cpu", "feature_dim": 80, "vocab_size": 128})
    count = sum(p.numel() for p in model.parameters())
    assert 2e5 <= count <= 2e6, count
    assert model.subsampling_factor in (2, 3)


def _tiny(dense: bool = False, separable: bool = True) -> ConvCtcModel:
    config = ConvCtcConfig(
        prologue=BlockSpec(16, 5, stride=2),
        blocks=(BlockSpec(16, 5, repeat=2), BlockSpec(24, 7, repeat=2)),
        epilogue=(BlockSpec(32, 5, dilation=2), BlockSpec(32, 1)),
        separable=separable,
        dense_residual=dense,
    )
    return ConvCtcModel(feature_dim=10, config=config, vocab_size=7)


def test_model_interface():
    model = _tiny()
    assert isinstance(model, AsrModelInterface)
    assert has_ctc_head(model) and not has_transducer(model)
    assert model.use_transducer is False and model.decoder is None
    x = torch.randn(3, 41, 10)
    x_lens = torch.tensor([41, 30, 9])
    out, out_lens = model.forward_encoder(x, x_lens)
    assert out.shape == (3, 21, 32)
    assert out_lens.tolist() == [21, 15, 5] == model.output_frames(x_lens).tolist()
    assert model.output_frames(9) == 5
    simple, pruned, ctc = model(x, x_lens, [[1, 2], [3], [4, 5, 6]])
    assert simple.item() == 0.0 and pruned.item() == 0.0 and ctc.item() > 0
    with pytest.raises(ValueError, match="not causal"):
        model.streaming_encoder(16, 64)


@pytest.mark.parametrize("dense,separable", [(False, True), (True, False)])
def test_padding_does_not_leak(dense, separable):
    """An utterance gives the same encoder output alone as in a batch with a longer one."""
    torch.manual_seed(0)
    model = _tiny(dense, separable).eval()
    long, short = torch.randn(1, 50, 10), torch.randn(1, 23, 10)
    batch = torch.cat([long, torch.nn.functional.pad(short, (0, 0, 0, 27), value=5.0)])
    out, out_lens = model.forward_encoder(batch, torch.tensor([50, 23]))
    alone, alone_lens = model.forward_encoder(short, torch.tensor([23]))
    assert out_lens[1] == alone_lens[0] == 12
    torch.testing.assert_close(out[1, :12], alone[0], atol=1e-5, rtol=1e-5)
    assert out[1, 12:].abs().max() == 0  # padding frames are zeroed


def test_dense_residual_has_one_input_per_earlier_block():
    model = _tiny(dense=True)
    counts = [len(block.residuals) for block in model.encoder.blocks]
    assert counts == [1, 2]
    assert [len(b.residuals) for b in _tiny(dense=False).encoder.blocks] == [1, 1]


def test_receptive_field_matches_context_frames():
    """Changing an input frame just outside the stated context leaves output frame t alone;
    changing one just inside does not."""
    torch.manual_seed(0)
    model = _tiny().eval()
    context = model.context_frames
    x = torch.randn(1, 200, 10)
    t_out = 50  # its centre input frame is 100 (stride 2)
    base, _ = model.forward_encoder(x, torch.tensor([200]))
    outside, inside = x.clone(), x.clone()
    outside[0, 100 + context + 1] += 10.0
    inside[0, 100 + context] += 10.0
    y_out, _ = model.forward_encoder(outside, torch.tensor([200]))
    y_in, _ = model.forward_encoder(inside, torch.tensor([200]))
    assert torch.equal(y_out[0, t_out], base[0, t_out])
    assert not torch.allclose(y_in[0, t_out], base[0, t_out])


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = _tiny()
    x = torch.randn(4, 60, 10)
    x_lens = torch.tensor([60, 55, 50, 40])
    y = [[1, 2, 3, 4], [2, 3], [5, 6, 1], [4, 4, 2]]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        _, _, loss = model(x, x_lens, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_dropout_flag_overrides_the_preset():
    config = conv_ctc_config({"conv_preset": "cpu", "conv_dropout": 0.3})
    assert {b.dropout for b in config.blocks} == {0.3}
    assert conv_ctc_config({"conv_preset": "cpu"}) is CONV_CTC_PRESETS["cpu"]
    with pytest.raises(ValueError, match="--conv-preset"):
        conv_ctc_config({"conv_preset": "quartznet99"})
