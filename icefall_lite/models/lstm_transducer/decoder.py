"""The LSTM prediction network ("decoder") of an RNN-T: a stateful decoder.

Unlike the stateless :class:`~icefall_lite.models.decoder.Decoder`, its output depends on the
whole token history through a recurrent state. Searches keep that state in their hypotheses
(see :mod:`icefall_lite.search.transducer_common`): :meth:`LstmDecoder.step` feeds one token per
hypothesis and returns the new state, which the hypothesis extended by that token carries.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["LstmDecoder"]


class LstmDecoder(nn.Module):
    """Embedding -> LSTM layers; blank doubles as the start symbol (its embedding is zero).

    Args:
      vocab_size: output tokens, blank included.
      decoder_dim: embedding size and LSTM hidden size (the output dimension).
      blank_id: id of blank.
      num_layers: LSTM layers.
      dropout: on the embedding and between layers.

    ``context_size`` is 1: a search feeds the last token of a history, the rest of the history
    is in the state: ``(h, c)``, each (num_layers, B, decoder_dim).
    """

    def __init__(
        self,
        vocab_size: int,
        decoder_dim: int,
        blank_id: int = 0,
        num_layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if vocab_size <= 0 or decoder_dim <= 0 or num_layers <= 0:
            raise ValueError(
                f"LstmDecoder: vocab_size {vocab_size}, decoder_dim {decoder_dim} and num_layers "
                f"{num_layers} must be positive"
            )
        if not 0 <= blank_id < vocab_size:
            raise ValueError(f"LstmDecoder: blank_id {blank_id} is outside [0, {vocab_size})")
        # Searches keep this decoder's state in their hypotheses (an instance attribute, so a
        # TorchScript export keeps it too).
        self.is_stateful = True
        self.vocab_size = vocab_size
        self.decoder_dim = decoder_dim
        self.blank_id = blank_id
        self.context_size = 1
        self.num_layers = num_layers
        self.embedding = nn.Embedding(vocab_size, decoder_dim, padding_idx=blank_id)
        self.embedding_dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(
            decoder_dim,
            decoder_dim,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )

    def _embed(self, y: Tensor) -> Tensor:
        y = y.to(torch.int64)
        # Blank (the start symbol) and negative ids ("no token") embed to zero.
        is_token = (y >= 0) & (y != self.blank_id)
        return self.embedding_dropout(self.embedding(y.clamp(min=0)) * is_token.unsqueeze(-1))

    def forward(self, y: Tensor, need_pad: bool = True) -> Tensor:
        """Training: run the LSTM over whole histories from the zero state.

        Args:
          y: (N, U) token ids, the first being the start symbol (blank).
          need_pad: accepted for the stateless decoder's signature; an LSTM needs no padding.
        Returns:
          (N, U, decoder_dim): output u depends on ``y[:, :u + 1]``.
        """
        out, _ = self.rnn(self._embed(y))
        return out

    @torch.jit.export
    def init_state(
        self, batch_size: int, device: torch.device = torch.device("cpu")
    ) -> Tuple[Tensor, Tensor]:
        """The zero state (before the start symbol)."""
        shape = (self.num_layers, batch_size, self.decoder_dim)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    @torch.jit.export
    def step(
        self, tokens: Tensor, state: Optional[Tuple[Tensor, Tensor]]
    ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        """Feed one token per history.

        Args:
          tokens: (B,) the last token of each history.
          state: the state after the rest of each history ((layers, B, hidden) each), or None
            for the zero state.
        Returns:
          (B, decoder_dim) output and the state after ``tokens``.
        """
        out, (h, c) = self.rnn(self._embed(tokens.reshape(-1, 1)), state)
        return out[:, 0], (h, c)
