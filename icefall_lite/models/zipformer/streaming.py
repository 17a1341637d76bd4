"""Chunk-by-chunk Zipformer2 encoding: front end + encoder with cached state.

:class:`ZipformerStreamingEncoder` is the callable the streaming decode loop
(``icefall_lite.streaming``) drives: each call takes ``decode_chunk_len + pad_length`` fbank
frames per stream, advances the streams by ``decode_chunk_len`` frames and returns
``decode_chunk_len / 4`` encoder frames. Its outputs equal the full-utterance forward of the same
causal model with the matching chunk attention mask (the "simulated streaming" used in
training), up to float round-off.

State layout (one list of tensors, batch axes in ``state_batch_dims``): the encoder's per-layer
caches (see :meth:`Zipformer2.get_init_states`), then the front end's ConvNeXt cache
(N, 128, 3, F') and ``processed_lens`` (N,), the number of 50 Hz frames seen so far.
"""

from typing import List, Tuple

import torch
from torch import Tensor, nn

from icefall_lite.models.zipformer.encoder import Zipformer2
from icefall_lite.models.zipformer.subsampling import Conv2dSubsampling
from icefall_lite.utils import make_pad_mask

__all__ = ["ZipformerStreamingEncoder", "zipformer2_state_batch_dims"]


def zipformer2_state_batch_dims(num_layers: int) -> List[int]:
    """Batch axes of a Zipformer2 streaming state of ``num_layers`` layers in all stacks.

    The layout sherpa-onnx also uses: per layer ``cached_key`` (L, N, key_dim),
    ``cached_nonlin_attn`` (1, N, L, C'), ``cached_val1`` and ``cached_val2`` (L, N, value_dim),
    ``cached_conv1`` and ``cached_conv2`` (N, C, kernel // 2); then the front end's
    ``embed_states`` (N, 128, 3, F') and ``processed_lens`` (N,).
    """
    return [1, 1, 1, 1, 0, 0] * num_layers + [0, 0]


class ZipformerStreamingEncoder(nn.Module):
    """Streaming wrapper around a causal (``causal=True``) front end + Zipformer2 pair.

    Args:
        encoder_embed: the model's :class:`Conv2dSubsampling`.
        encoder: the model's causal :class:`Zipformer2`.
        chunk_size: chunk in 50 Hz frames; default ``encoder.chunk_size[0]``.
        left_context_frames: attention cache in 50 Hz frames; default
            ``encoder.left_context_frames[0]``.
    The wrapper shares (does not copy) the modules; it sets the encoder's decode-time chunk
    size and left context to these values.
    """

    def __init__(
        self,
        encoder_embed: Conv2dSubsampling,
        encoder: Zipformer2,
        chunk_size: int = 0,
        left_context_frames: int = 0,
    ) -> None:
        super().__init__()
        if not encoder.causal:
            raise ValueError("streaming needs a model trained with --causal 1")
        chunk_size = chunk_size or encoder.chunk_size[0]
        left_context_frames = left_context_frames or encoder.left_context_frames[0]
        factors = encoder.downsampling_factor + [2]
        if chunk_size <= 0 or any(chunk_size % d for d in factors):
            raise ValueError(
                f"--chunk-size: {chunk_size} must be a positive multiple of 2 and of every "
                f"--downsampling-factor entry {encoder.downsampling_factor} for streaming"
            )
        if left_context_frames <= 0 or any(left_context_frames % d for d in factors):
            raise ValueError(
                f"--left-context-frames: {left_context_frames} must be a positive multiple of 2 "
                f"and of every --downsampling-factor entry {encoder.downsampling_factor}"
            )
        for i, (kernel, ds) in enumerate(
            zip(encoder.cnn_module_kernel, encoder.downsampling_factor)
        ):
            if left_context_frames < (kernel // 2) * ds:
                raise ValueError(
                    f"--left-context-frames: {left_context_frames} is shorter than the "
                    f"convolution context of stack {i} ({(kernel // 2) * ds} frames)"
                )
        encoder.chunk_size = [chunk_size]
        encoder.left_context_frames = [left_context_frames]
        self.encoder_embed = encoder_embed
        self.encoder = encoder
        self.chunk_size = chunk_size
        self.left_context_frames = left_context_frames
        # fbank frames per chunk (the front end halves the rate) ...
        self.decode_chunk_len = 2 * chunk_size
        # ... plus the front end's receptive field (7) and the ConvNeXt look-ahead (2 * 3).
        self.pad_length = 7 + 2 * encoder_embed.convnext.padding[0]
        self.state_batch_dims: List[int] = zipformer2_state_batch_dims(
            sum(encoder.num_encoder_layers)
        )

    @torch.jit.export
    def get_init_states(
        self, batch_size: int = 1, device: torch.device = torch.device("cpu")
    ) -> List[Tensor]:
        """Zero state for ``batch_size`` new streams."""
        states = self.encoder.get_init_states(batch_size, device)
        states.append(self.encoder_embed.get_init_states(batch_size, device))
        states.append(torch.zeros(batch_size, dtype=torch.int64, device=device))
        return states

    def forward(
        self, x: Tensor, x_lens: Tensor, states: List[Tensor]
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """Encode one chunk.

        Args:
            x: (N, decode_chunk_len + pad_length, F) fbank; consecutive calls overlap by
               ``pad_length`` frames.
            x_lens: (N,) valid frames in ``x``.
            states: see the module docstring.
        Returns:
            (N, chunk_size / 2, C) encoder output, (N,) valid output frames, new states.
        """
        batch_size = x.shape[0]
        cached_embed = states[-2]
        processed_lens = states[-1]
        x, x_lens, new_cached_embed = self.encoder_embed.streaming_forward(x, x_lens, cached_embed)
        # Cache slots not yet filled by earlier chunks are masked: slot j (oldest first) holds
        # a real frame only if j >= left_context - processed_lens.
        left = self.left_context_frames
        slots = torch.arange(left, device=x.device).expand(batch_size, left)
        unfilled = (processed_lens.unsqueeze(1) <= slots).flip(1)
        padding = make_pad_mask(x_lens, x.shape[1])
        src_key_padding_mask = torch.cat((unfilled, padding), dim=1)

        encoder_out, out_lens, new_states = self.encoder.streaming_forward(
            x.permute(1, 0, 2), x_lens, states[:-2], src_key_padding_mask
        )
        new_states.append(new_cached_embed)
        new_states.append(processed_lens + x_lens)
        return encoder_out.permute(1, 0, 2), out_lens, new_states
