"""Transducer joint network: combines encoder and decoder frames into token logits."""

import torch
import torch.nn as nn


class Joiner(nn.Module):
    """``output_linear(tanh(encoder_proj(enc) + decoder_proj(dec)))``.

    The two input projections are exposed as attributes because pruned RNN-T training (and fast
    searches) project once and then combine many (t, u) pairs with ``project_input=False``.

    Args:
      encoder_dim: last dimension of the encoder output.
      decoder_dim: last dimension of the decoder output.
      joiner_dim: hidden dimension the two are projected to.
      vocab_size: number of output tokens, blank included.
    """

    def __init__(self, encoder_dim: int, decoder_dim: int, joiner_dim: int, vocab_size: int):
        super().__init__()
        for name, value in (
            ("encoder_dim", encoder_dim),
            ("decoder_dim", decoder_dim),
            ("joiner_dim", joiner_dim),
            ("vocab_size", vocab_size),
        ):
            if value <= 0:
                raise ValueError(f"Joiner: {name} must be positive, got {value}")
        self.encoder_proj = nn.Linear(encoder_dim, joiner_dim)
        self.decoder_proj = nn.Linear(decoder_dim, joiner_dim)
        self.output_linear = nn.Linear(joiner_dim, vocab_size)

    def forward(
        self,
        encoder_out: torch.Tensor,
        decoder_out: torch.Tensor,
        project_input: bool = True,
    ) -> torch.Tensor:
        """
        Args:
          encoder_out: (..., encoder_dim), or (..., joiner_dim) if ``project_input`` is False.
          decoder_out: (..., decoder_dim), or (..., joiner_dim) if ``project_input`` is False.
            The leading dimensions of the two must broadcast, e.g. (N, T, s_range, C) with
            (N, T, s_range, C), or (N, T, 1, C) with (N, 1, U, C).
        Returns:
          Logits (unnormalised), shape (broadcast leading dims..., vocab_size).
        """
        if project_input:
            logit = self.encoder_proj(encoder_out) + self.decoder_proj(decoder_out)
        else:
            logit = encoder_out + decoder_out
        return self.output_linear(torch.tanh(logit))
