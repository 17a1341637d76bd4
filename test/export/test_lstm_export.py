"""The LSTM transducer's TorchScript and ONNX exports compute what the PyTorch model computes,
and decode chunk by chunk to the same transcripts."""

import pytest
import torch

from icefall_lite.export.torchscript import export_jit_script
from icefall_lite.models import build_model
from icefall_lite.streaming import FeatureNorm, StreamingSearch, streaming_decode
from icefall_lite.utils import AttributeDict


def _model():
    torch.manual_seed(1)
    params = AttributeDict(
        model_family="lstm_transducer",
        vocab_size=12,
        blank_id=0,
        lstm_preset="cpu",
        encoder_hidden_dim=24,
        pred_net_dim=16,
        joint_dim=16,
    )
    model = build_model(params).eval()
    with torch.no_grad():  # emit something: make blank less dominant
        model.joiner.output_linear.bias[0] -= 2.0
    return model


def _utterances():
    g = torch.Generator().manual_seed(5)
    return [(f"u{i}", -5 + 2 * torch.randn(n, 80, generator=g)) for i, n in enumerate([70, 101])]


def _decode(encoder, model, method="greedy_search"):
    results, _ = streaming_decode(
        encoder,
        StreamingSearch(model, method, beam_size=3),
        _utterances(),
        tail_padding_frames=getattr(encoder, "tail_padding_frames", 0),
        feature_norm=FeatureNorm(None),
    )
    return {k: r.tokens for k, r in results.items()}


def test_torchscript_streaming_model_decodes_like_pytorch(tmp_path):
    model = _model()
    expected = _decode(model.streaming_encoder(4), model)
    assert any(expected.values()), "degenerate test: nothing emitted"
    export_jit_script(model, tmp_path / "jit.pt", causal=True, chunk_size=4)
    scripted = torch.jit.load(str(tmp_path / "jit.pt"))
    assert scripted.input_normalization == "utterance"
    assert scripted.decoder.is_stateful
    for method in ("greedy_search", "modified_beam_search"):
        assert _decode(scripted, scripted, method) == _decode(
            model.streaming_encoder(4), model, method
        )


@pytest.mark.slow
def test_onnx_export_decodes_like_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    from icefall_lite.export.lstm_onnx import (
        OnnxLstmStreamingEncoder,
        OnnxLstmTransducer,
        export_lstm_transducer_onnx,
    )

    model = _model()
    files = {k: tmp_path / f"{k}.onnx" for k in ("encoder", "decoder", "joiner")}
    export_lstm_transducer_onnx(model, files, chunk_size=4)
    encoder = OnnxLstmStreamingEncoder(files["encoder"])
    onnx_model = OnnxLstmTransducer(files["decoder"], files["joiner"])
    assert encoder.decode_chunk_len == 24 and encoder.input_normalization == "utterance"
    # One chunk and one decoder step, numerically.
    x = torch.randn(2, 24, 80)
    states = encoder.get_init_states(2)
    out, lens, new_states = encoder(x, torch.tensor([24, 24]), states)
    ref, _, ref_states = model.encoder(x, torch.tensor([24, 24]), states)
    torch.testing.assert_close(out, model.joiner.encoder_proj(ref), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(new_states[3], ref_states[3], atol=1e-4, rtol=1e-4)
    dec, (h, _) = onnx_model.decoder.step(torch.tensor([3, 4]), None)
    ref_dec, (ref_h, _) = model.decoder.step(torch.tensor([3, 4]), None)
    torch.testing.assert_close(dec, model.joiner.decoder_proj(ref_dec), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(h, ref_h, atol=1e-4, rtol=1e-4)
    assert _decode(encoder, onnx_model) == _decode(model.streaming_encoder(4), model)
