"""Causal Zipformer2: chunk masks in the full-utterance forward, and chunk-wise streaming that
must reproduce it."""

import pytest
import torch
from mini_zipformer import MINI_ZIPFORMER

from icefall_lite.models.zipformer import build_zipformer, preset_params, set_batch_count
from icefall_lite.models.zipformer.scaling import ChunkCausalDepthwiseConv1d
from icefall_lite.models.zipformer.streaming import ZipformerStreamingEncoder
from icefall_lite.streaming.states import stack_states, unstack_states
from icefall_lite.utils import make_pad_mask

CHUNK = 16  # 50 Hz frames
LEFT = 64


@pytest.fixture(scope="module")
def causal_tiny():
    torch.manual_seed(1)
    encoder_embed, encoder = build_zipformer(
        preset_params("tiny", causal=True, chunk_size=f"{CHUNK}", left_context_frames=f"{LEFT}")
    )
    # Perturb the zero-initialised parameters so the test exercises them.
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if "chunkwise_conv_scale" in name or name.endswith("downsample.bias"):
                p.normal_(0.0, 0.3)
    encoder_embed.eval()
    encoder.eval()
    return encoder_embed, encoder


def simulated(encoder_embed, encoder, x, x_lens):
    emb, emb_lens = encoder_embed(x, x_lens)
    mask = make_pad_mask(emb_lens, emb.shape[1])
    out, out_lens = encoder(emb.permute(1, 0, 2), emb_lens, mask)
    return out.permute(1, 0, 2), out_lens


def test_chunk_causal_conv_streaming_matches_chunked_forward():
    torch.manual_seed(0)
    conv = ChunkCausalDepthwiseConv1d(channels=3, kernel_size=7)
    with torch.no_grad():
        conv.chunkwise_conv_scale.normal_(0.0, 0.5)
    x = torch.randn(2, 3, 24)
    full = conv(x, chunk_size=8)
    cache = torch.zeros(2, 3, 3)
    pieces = []
    for start in range(0, 24, 8):
        out, cache = conv.streaming_forward(x[..., start : start + 8], cache)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, dim=-1), full, rtol=1e-5, atol=1e-6)
    # Nothing after the end of a chunk reaches it.
    x2 = x.clone()
    x2[..., 16:] += 1.0
    torch.testing.assert_close(conv(x2, chunk_size=8)[..., :16], full[..., :16])


def test_simulated_streaming_is_chunk_causal(causal_tiny):
    encoder_embed, encoder = causal_tiny
    x = torch.randn(1, 2 * 4 * CHUNK + 20, 80)
    x_lens = torch.tensor([x.shape[1]])
    with torch.no_grad():
        out, _ = simulated(encoder_embed, encoder, x, x_lens)
        # Changing features after chunk 1 (+ the front end's look-ahead) keeps chunks 0-1 fixed.
        boundary = 2 * 2 * CHUNK + 7 + 6
        x2 = x.clone()
        x2[:, boundary:] = torch.randn_like(x2[:, boundary:])
        out2, _ = simulated(encoder_embed, encoder, x2, x_lens)
    kept = 2 * CHUNK // 2  # output frames of chunks 0 and 1 (25 Hz)
    torch.testing.assert_close(out2[:, :kept], out[:, :kept], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out2[:, kept:], out[:, kept:])


def test_chunkwise_streaming_matches_simulated(causal_tiny):
    encoder_embed, encoder = causal_tiny
    streaming = ZipformerStreamingEncoder(encoder_embed, encoder)
    assert streaming.decode_chunk_len == 2 * CHUNK and streaming.pad_length == 13
    num_chunks = 6  # more than the left context, so the caches wrap around
    total = num_chunks * streaming.decode_chunk_len + streaming.pad_length
    x = torch.randn(2, total, 80)
    x_lens = torch.tensor([total, total])
    with torch.no_grad():
        expected, _ = simulated(encoder_embed, encoder, x, x_lens)
        states = streaming.get_init_states(batch_size=2)
        outputs = []
        for k in range(num_chunks):
            start = k * streaming.decode_chunk_len
            chunk = x[:, start : start + streaming.decode_chunk_len + streaming.pad_length]
            chunk_lens = torch.full((2,), chunk.shape[1])
            out, out_lens, states = streaming(chunk, chunk_lens, states)
            assert out.shape == (2, CHUNK // 2, encoder.output_dim)
            assert out_lens.tolist() == [CHUNK // 2] * 2
            outputs.append(out)
    got = torch.cat(outputs, dim=1)
    assert states[-1].tolist() == [num_chunks * CHUNK] * 2  # processed_lens
    torch.testing.assert_close(got, expected[:, : got.shape[1]], rtol=0.0, atol=1e-4)


def test_streams_can_join_and_leave_the_batch(causal_tiny):
    encoder_embed, encoder = causal_tiny
    streaming = ZipformerStreamingEncoder(encoder_embed, encoder)
    frames = streaming.decode_chunk_len + streaming.pad_length
    a = torch.randn(3, frames, 80)
    b = torch.randn(3, frames, 80)
    lens = torch.tensor([frames])
    dims = streaming.state_batch_dims
    with torch.no_grad():
        # stream A alone for 3 chunks
        state_a = streaming.get_init_states(1)
        alone = []
        for k in range(3):
            out, _, state_a = streaming(a[k : k + 1], lens, state_a)
            alone.append(out)
        # stream A batched with a fresh stream B from its second chunk on
        state_a = streaming.get_init_states(1)
        out, _, state_a = streaming(a[0:1], lens, state_a)
        together = [out]
        state_b = streaming.get_init_states(1)
        for k in range(1, 3):
            batch_states = stack_states([state_a, state_b], dims)
            x = torch.cat((a[k : k + 1], b[k - 1 : k]), dim=0)
            out, _, batch_states = streaming(x, lens.expand(2), batch_states)
            state_a, state_b = unstack_states(batch_states, dims)
            together.append(out[0:1])
    torch.testing.assert_close(torch.cat(together, 1), torch.cat(alone, 1), rtol=0, atol=1e-4)


def test_streaming_encoder_is_scriptable():
    # two small stacks: TorchScript compilation time grows with the number of modules
    encoder_embed, encoder = build_zipformer(
        preset_params(
            "tiny",
            **MINI_ZIPFORMER,
            causal=True,
            chunk_size=f"{CHUNK}",
            left_context_frames=f"{LEFT}",
        )
    )
    encoder_embed.eval()
    encoder.eval()
    streaming = ZipformerStreamingEncoder(encoder_embed, encoder)
    scripted = torch.jit.script(streaming)
    frames = streaming.decode_chunk_len + streaming.pad_length
    x = torch.randn(1, frames, 80)
    lens = torch.tensor([frames])
    with torch.no_grad():
        expected, _, expected_states = streaming(x, lens, streaming.get_init_states(1))
        got, _, got_states = scripted(x, lens, scripted.get_init_states(1, torch.device("cpu")))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert len(got_states) == len(expected_states)


def test_causal_training_draws_chunk_sizes():
    torch.manual_seed(0)
    encoder_embed, encoder = build_zipformer(preset_params("tiny", causal=True))
    assert encoder.chunk_size == [16, 32, 64, -1]
    encoder_embed.train()
    encoder.train()
    set_batch_count(encoder, 100.0)
    seen = {encoder.get_chunk_info() for _ in range(200)}
    assert (-1, -1) in seen and (16, 4) in seen and (64, 1) in seen
    x = torch.randn(2, 90, 80)
    emb, emb_lens = encoder_embed(x, torch.tensor([90, 70]))
    out, _ = encoder(emb.permute(1, 0, 2), emb_lens, make_pad_mask(emb_lens, emb.shape[1]))
    out.sum().backward()
    assert torch.isfinite(out).all()


def test_non_causal_model_cannot_stream():
    encoder_embed, encoder = build_zipformer(preset_params("tiny"))
    with pytest.raises(ValueError, match="causal"):
        ZipformerStreamingEncoder(encoder_embed, encoder)
