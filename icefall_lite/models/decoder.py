"""Stateless transducer prediction network ("decoder").

The decoder sees only the last ``context_size`` tokens, so it is an embedding followed by a
1-D convolution over that window instead of an RNN. This makes beam search cheap (no hidden
state to carry) and is the design used by icefall's pruned transducer recipes.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Decoder(nn.Module):
    """Embedding + context convolution over the previous ``context_size`` tokens.

    The blank symbol doubles as the padding / start-of-sequence symbol: its embedding is fixed at
    zero, so a history of ``[blank] * context_size`` (what searches feed at the start of an
    utterance) is indistinguishable from the zero left-padding used in training. Negative token
    ids (``-1``) are also treated as "no token" and embed to zero, so both conventions for an
    empty history give the same output.

    Args:
      vocab_size: number of output tokens, blank included.
      decoder_dim: embedding and output dimension.
      blank_id: id of the blank token.
      context_size: number of previous tokens the output depends on (1 = bigram-like).
    """

    def __init__(self, vocab_size: int, decoder_dim: int, blank_id: int, context_size: int):
        super().__init__()
        if vocab_size <= 0:
            raise ValueError(f"Decoder: vocab_size must be positive, got {vocab_size}")
        if context_size < 1:
            raise ValueError(f"Decoder: context_size must be >= 1, got {context_size}")
        if not 0 <= blank_id < vocab_size:
            raise ValueError(f"Decoder: blank_id {blank_id} is outside [0, {vocab_size})")
        if context_size > 1 and decoder_dim % 4 != 0:
            raise ValueError(f"Decoder: decoder_dim must be a multiple of 4, got {decoder_dim}")

        self.vocab_size = vocab_size
        self.decoder_dim = decoder_dim
        self.blank_id = blank_id
        self.context_size = context_size

        self.embedding = nn.Embedding(vocab_size, decoder_dim, padding_idx=blank_id)
        if context_size > 1:
            # Grouped (4 channels per group) to keep the parameter count small; no bias so that
            # an all-blank history maps to exactly zero before the joiner's projection.
            self.conv = nn.Conv1d(
                decoder_dim,
                decoder_dim,
                kernel_size=context_size,
                padding=0,
                groups=decoder_dim // 4,
                bias=False,
            )
        else:
            self.conv = nn.Identity()

    def forward(self, y: torch.Tensor, need_pad: bool = True) -> torch.Tensor:
        """
        Args:
          y: (N, U) token ids; ids < 0 mean "no token".
          need_pad: True in training: left-pad with ``context_size - 1`` empty positions so the
            output has one frame per input token. False in decoding: ``U`` must equal
            ``context_size`` and the output has a single frame.
        Returns:
          (N, U, decoder_dim) if ``need_pad`` else (N, 1, decoder_dim).
        """
        y = y.to(torch.int64)
        # Masking (not only padding_idx) keeps blank at zero even if loaded weights say otherwise.
        is_token = (y >= 0) & (y != self.blank_id)
        embedding_out = self.embedding(y.clamp(min=0)) * is_token.unsqueeze(-1)
        if self.context_size > 1:
            embedding_out = embedding_out.permute(0, 2, 1)  # (N, C, U) for Conv1d
            if need_pad:
                embedding_out = F.pad(embedding_out, pad=(self.context_size - 1, 0))
            elif embedding_out.size(-1) != self.context_size:
                raise ValueError(
                    f"Decoder: need_pad=False expects {self.context_size} tokens of context, "
                    f"got {embedding_out.size(-1)}"
                )
            embedding_out = self.conv(embedding_out).permute(0, 2, 1)
        return F.relu(embedding_out)
