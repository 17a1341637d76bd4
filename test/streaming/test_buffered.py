"""Buffered chunked inference of a non-causal CTC model."""

import pytest
import torch

from icefall_lite.models.conv_ctc import BlockSpec, ConvCtcConfig, ConvCtcModel
from icefall_lite.streaming.buffered import BufferedCtcModel, buffered_encode


def _model():
    torch.manual_seed(0)
    config = ConvCtcConfig(
        prologue=BlockSpec(16, 5, stride=2),
        blocks=(BlockSpec(16, 5, repeat=2), BlockSpec(16, 7, repeat=2)),
        epilogue=(BlockSpec(24, 5, dilation=2), BlockSpec(24, 1)),
    )
    return ConvCtcModel(feature_dim=10, config=config, vocab_size=7).eval()


def test_enough_context_gives_the_full_context_output():
    model = _model()
    context = model.context_frames + model.context_frames % 2  # a multiple of the stride
    x = torch.randn(3, 173, 10)
    x_lens = torch.tensor([173, 120, 37])
    full, full_lens = model.forward_encoder(x, x_lens)
    out, lens = buffered_encode(model, x, x_lens, chunk=20, left=context, right=context)
    assert torch.equal(lens, full_lens)
    torch.testing.assert_close(out, full, atol=1e-5, rtol=1e-5)


def test_short_right_context_only_changes_frames_near_chunk_ends():
    model = _model()
    x, x_lens = torch.randn(1, 200, 10), torch.tensor([200])
    full, _ = model.forward_encoder(x, x_lens)
    left = model.context_frames + model.context_frames % 2
    out, _ = buffered_encode(model, x, x_lens, chunk=40, left=left, right=4)
    assert out.shape == full.shape
    assert not torch.allclose(out, full, atol=1e-4)
    # The last chunk ends at the utterance's end: nothing is cut off on its right.
    torch.testing.assert_close(out[0, -20:], full[0, -20:], atol=1e-5, rtol=1e-5)


def test_wrapper_and_bad_sizes():
    model = _model()
    wrapped = BufferedCtcModel(model, chunk=20, left=10, right=10)
    x, x_lens = torch.randn(2, 50, 10), torch.tensor([50, 30])
    out, lens = wrapped.forward_encoder(x, x_lens)
    assert out.shape == (2, 25, 24) and lens.tolist() == [25, 15]
    assert wrapped.ctc_output is model.ctc_output and wrapped.decoder is None
    with pytest.raises(ValueError, match="--chunk-frames 21 must be a multiple"):
        BufferedCtcModel(model, chunk=21, left=10, right=10)
    with pytest.raises(ValueError, match="--right-context must be >= 0"):
        BufferedCtcModel(model, chunk=20, left=10, right=-1)
