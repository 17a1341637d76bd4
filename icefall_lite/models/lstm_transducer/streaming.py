"""Chunk-by-chunk encoding with the LSTM encoder: the (h, c) states are the whole cache.

:class:`LstmStreamingEncoder` is a :class:`~icefall_lite.models.interface.ChunkEncoder`: each call
takes ``decode_chunk_len`` (already normalised) fbank frames per stream and returns
``decode_chunk_len / subsampling_factor`` encoder frames. Frame stacking and time reduction group
frames without overlap and the LSTMs are causal, so with a chunk that is a multiple of the
subsampling factor the outputs equal those of the whole-utterance encoder on the same features
(no look-ahead: ``pad_length`` is 0).
"""

from typing import List, Tuple

import torch
from torch import Tensor, nn

from icefall_lite.models.lstm_transducer.encoder import LstmEncoder

__all__ = ["LstmStreamingEncoder"]


class LstmStreamingEncoder(nn.Module):
    """Streaming wrapper sharing (not copying) the model's encoder.

    Args:
      encoder: the model's :class:`LstmEncoder`.
      chunk_size: encoder output frames per chunk (so ``chunk_size * subsampling_factor``
        fbank frames), >= 1.

    State: ``[h_pre, c_pre, h_post, c_post]``, each (layers, N, hidden): batch axis 1.
    """

    def __init__(self, encoder: LstmEncoder, chunk_size: int = 8) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"--chunk-size must be >= 1 for LSTM streaming, got {chunk_size}")
        self.encoder = encoder
        self.chunk_size = chunk_size
        self.decode_chunk_len = chunk_size * encoder.subsampling_factor
        self.pad_length = 0
        # No look-ahead to flush: the stream ends on the chunk its last frame is in.
        self.tail_padding_frames = 0
        self.state_batch_dims: List[int] = [1, 1, 1, 1]

    @torch.jit.export
    def get_init_states(
        self, batch_size: int = 1, device: torch.device = torch.device("cpu")
    ) -> List[Tensor]:
        return self.encoder.get_init_states(batch_size, device)

    def forward(
        self, x: Tensor, x_lens: Tensor, states: List[Tensor]
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """(B, decode_chunk_len, F) normalised features, (B,) valid frames, states ->
        (B, chunk_size, C) output, (B,) valid output frames, new states."""
        return self.encoder(x, x_lens, states)
