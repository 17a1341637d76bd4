"""TorchScript and ONNX exports reproduce the PyTorch model; sherpa-onnx loads and decodes them."""

import argparse

import numpy as np
import pytest
import torch

from icefall_lite.export.metadata import (
    decoder_meta_data,
    joiner_meta_data,
    offline_encoder_meta_data,
    streaming_encoder_meta_data,
)
from icefall_lite.export.onnx import (
    export_decoder_onnx,
    export_encoder_onnx,
    export_joiner_onnx,
    export_streaming_encoder_onnx,
    quantize_int8,
    read_meta_data,
)
from icefall_lite.export.onnx_model import OnnxStreamingEncoder, OnnxTransducer
from icefall_lite.export.torchscript import export_jit_script
from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.models.zipformer import resolve_zipformer_params
from icefall_lite.models.zipformer.streaming import (
    ZipformerStreamingEncoder,
    zipformer2_state_batch_dims,
)
from icefall_lite.search import greedy_search
from icefall_lite.streaming.states import stack_states
from icefall_lite.utils import AttributeDict

CHUNK, LEFT = 16, 64


def tiny_params(causal: bool) -> AttributeDict:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    argv = ["--model-size", "tiny", "--causal", str(int(causal))]
    argv += ["--decoder-dim", "32", "--joiner-dim", "32"]
    params = AttributeDict(vars(parser.parse_args(argv)))
    params.update(vocab_size=20, blank_id=0, chunk_size=f"{CHUNK}", left_context_frames=f"{LEFT}")
    return params


def tiny_model(causal: bool):
    torch.manual_seed(5)
    model = build_model(tiny_params(causal)).eval()
    with torch.no_grad():
        model.joiner.output_linear.weight.mul_(8.0)  # decisive logits: varied tokens
    return model


@pytest.fixture(scope="module")
def offline_model():
    return tiny_model(causal=False)


@pytest.fixture(scope="module")
def causal_model():
    return tiny_model(causal=True)


def test_torchscript_offline_matches_pytorch(offline_model, tmp_path):
    export_jit_script(offline_model, tmp_path / "jit_script.pt")
    scripted = torch.jit.load(str(tmp_path / "jit_script.pt"))
    x, x_lens = torch.randn(2, 123, 80), torch.tensor([123, 88])
    with torch.no_grad():
        want, want_lens = offline_model.forward_encoder(x, x_lens)
        got, got_lens = scripted(x, x_lens)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
        assert torch.equal(got_lens, want_lens)
        y = torch.tensor([[0, 3], [5, 7]])
        torch.testing.assert_close(
            scripted.decoder(y, False), offline_model.decoder(y, need_pad=False), rtol=0, atol=1e-4
        )
    # the library's searches run on the scripted model unchanged
    assert [r.tokens for r in greedy_search(scripted, got, got_lens)] == [
        r.tokens for r in greedy_search(offline_model, want, want_lens)
    ]


def test_torchscript_streaming_matches_pytorch(causal_model, tmp_path):
    export_jit_script(causal_model, tmp_path / "s.pt", True, CHUNK, LEFT)
    scripted = torch.jit.load(str(tmp_path / "s.pt"))
    eager = ZipformerStreamingEncoder(causal_model.encoder_embed, causal_model.encoder, CHUNK, LEFT)
    assert scripted.decode_chunk_len == 2 * CHUNK and scripted.pad_length == 13
    states_s = scripted.get_init_states(2, torch.device("cpu"))
    states_e = eager.get_init_states(2)
    frames = eager.decode_chunk_len + eager.pad_length
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(2, frames, 80)
            lens = torch.tensor([frames, frames])
            got, _, states_s = scripted(x, lens, states_s)
            want, _, states_e = eager(x, lens, states_e)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_onnx_offline_matches_pytorch(offline_model, tmp_path):
    m = offline_model
    export_encoder_onnx(m, tmp_path / "enc.onnx", offline_encoder_meta_data())
    export_decoder_onnx(m.decoder, m.joiner.decoder_proj, tmp_path / "dec.onnx",
                        decoder_meta_data(2, 20))  # fmt: skip
    export_joiner_onnx(m.joiner, tmp_path / "join.onnx", joiner_meta_data(32))
    onnx_model = OnnxTransducer(
        tmp_path / "dec.onnx", tmp_path / "join.onnx", tmp_path / "enc.onnx"
    )
    # a length other than the one traced, and a padded utterance
    x, x_lens = torch.randn(2, 211, 80), torch.tensor([211, 150])
    with torch.no_grad():
        enc, enc_lens = m.forward_encoder(x, x_lens)
        want = m.joiner.encoder_proj(enc)
        got, got_lens = onnx_model.run_encoder(x, x_lens)
        n = int(enc_lens[1])
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-4)
        torch.testing.assert_close(got[1, :n], want[1, :n], rtol=0, atol=1e-4)
        assert torch.equal(got_lens, enc_lens)
        y = torch.tensor([[-1, 0], [4, 9]])
        torch.testing.assert_close(
            onnx_model.decoder(y).squeeze(1),
            m.joiner.decoder_proj(m.decoder(y, need_pad=False)).squeeze(1),
            rtol=0,
            atol=1e-4,
        )
        a, b = torch.randn(3, 32), torch.randn(3, 32)
        torch.testing.assert_close(
            onnx_model.joiner(a, b), m.joiner(a, b, project_input=False), rtol=0, atol=1e-4
        )
    want_tokens = [r.tokens for r in greedy_search(m, enc, enc_lens)]
    assert [r.tokens for r in greedy_search(onnx_model, got, got_lens)] == want_tokens
    assert read_meta_data(tmp_path / "enc.onnx")["model_type"] == "zipformer2"
    quantize_int8(tmp_path / "dec.onnx", tmp_path / "dec.int8.onnx", ("MatMul", "Gather"))
    assert read_meta_data(tmp_path / "dec.int8.onnx")["context_size"] == "2"


def test_onnx_streaming_encoder_matches_pytorch_chunkwise(causal_model, tmp_path):
    m = causal_model
    eager = ZipformerStreamingEncoder(m.encoder_embed, m.encoder, CHUNK, LEFT)
    meta = streaming_encoder_meta_data(resolve_zipformer_params(tiny_params(True)), CHUNK, LEFT)
    export_streaming_encoder_onnx(eager, m.joiner.encoder_proj, tmp_path / "s.onnx", meta)
    onnx_encoder = OnnxStreamingEncoder(tmp_path / "s.onnx")
    assert onnx_encoder.decode_chunk_len == 32 and onnx_encoder.pad_length == 13
    assert read_meta_data(tmp_path / "s.onnx")["left_context_len"] == "64,32,16,8,16,32"
    # two streams, the second joining one chunk later (states stacked from batch-1 states)
    states_onnx = onnx_encoder.get_init_states(2)
    states_torch = eager.get_init_states(2)
    for a, b in zip(states_onnx[:-2] + states_onnx[-1:], states_torch[:-2] + states_torch[-1:]):
        assert a.shape == b.shape
    # The front-end cache has sherpa-onnx's 128 channels in the graph, the tiny model's 32 inside.
    channels = m.encoder_embed.layer3_channels
    assert channels < 128 and states_onnx[-2].shape[1] == 128
    assert states_onnx[-2].shape[2:] == states_torch[-2].shape[2:]
    frames = 45
    dims = zipformer2_state_batch_dims((len(states_torch) - 2) // 6)
    one = torch.full((1,), frames)
    with torch.no_grad():
        # Stream A decodes its first chunk alone ...
        x = torch.randn(1, frames, 80)
        got, _, onnx_a = onnx_encoder(x, one, onnx_encoder.get_init_states(1))
        want, _, torch_a = eager(x, one, eager.get_init_states(1))
        torch.testing.assert_close(got, m.joiner.encoder_proj(want), rtol=0, atol=1e-4)
        # ... then stream B joins: A's advanced state stacked with a fresh one.
        states_onnx = stack_states([onnx_a, onnx_encoder.get_init_states(1)], dims)
        states_torch = stack_states([torch_a, eager.get_init_states(1)], dims)
        for chunk in range(2):
            x = torch.randn(2, frames, 80)
            lens = torch.full((2,), frames)
            if chunk == 0:  # B's first chunk in the batch is what B alone would give
                b_alone = eager(x[1:], one, eager.get_init_states(1))[0]
            got, got_lens, states_onnx = onnx_encoder(x, lens, states_onnx)
            want, want_lens, states_torch = eager(x, lens, states_torch)
            torch.testing.assert_close(got, m.joiner.encoder_proj(want), rtol=0, atol=1e-4)
            assert torch.equal(got_lens, want_lens)
            if chunk == 0:
                torch.testing.assert_close(want[1:], b_alone, rtol=0, atol=1e-5)
    # processed_lens: A is one chunk ahead of B
    assert np.array_equal(states_onnx[-1].numpy(), states_torch[-1].numpy())
    assert states_onnx[-1][0] > states_onnx[-1][1]
    embed = states_onnx[-2]
    torch.testing.assert_close(embed[:, :channels], states_torch[-2], rtol=0, atol=1e-4)
    assert not embed[:, channels:].abs().any()
