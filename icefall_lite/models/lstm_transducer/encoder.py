"""The LSTM encoder of a Myrtle.ai / MLPerf style RNN-T: frame stacking, LSTM layers, a
time-reduction layer, more LSTM layers.

Every piece is causal, so the encoder runs chunk by chunk with only the LSTM (h, c) states
carried between chunks (see :mod:`icefall_lite.models.lstm_transducer.streaming`), provided a
chunk is a whole number of ``subsampling_factor`` input frames.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["LstmEncoder", "stack_frames"]


def stack_frames(x: Tensor, x_lens: Tensor, factor: int) -> Tuple[Tensor, Tensor]:
    """Concatenate each group of ``factor`` consecutive frames into one frame.

    Groups do not overlap, so the frame rate drops by ``factor``; the frames of an incomplete
    last group are dropped (the same rule for a whole utterance and for a chunk that is a
    multiple of ``factor`` frames, so chunk-wise and whole-utterance encoding agree).

    Args:
      x: (N, T, C); x_lens: (N,) valid frames.
    Returns:
      (N, T // factor, factor * C) and (N,) lengths ``x_lens // factor``.
    """
    if factor == 1:
        return x, x_lens
    n, t, c = x.shape
    t_out = t // factor
    x = x[:, : t_out * factor].reshape(n, t_out, factor * c)
    return x, torch.div(x_lens, factor, rounding_mode="floor")


class LstmEncoder(nn.Module):
    """Frame stacking -> ``num_pre_layers`` LSTM -> time reduction -> ``num_post_layers`` LSTM.

    Args:
      feature_dim: fbank bins per input frame.
      hidden_dim: LSTM hidden size (also the output dimension).
      num_pre_layers, num_post_layers: LSTM layers before / after the time reduction.
      frame_stacking: input frames concatenated into one (and the first subsampling).
      time_reduction: encoder frames of the pre-layers concatenated into one (second
        subsampling; 1 disables it).
      dropout: between LSTM layers and on the output.
    """

    def __init__(
        self,
        feature_dim: int = 80,
        hidden_dim: int = 1024,
        num_pre_layers: int = 2,
        num_post_layers: int = 3,
        frame_stacking: int = 3,
        time_reduction: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        for name, value in (
            ("feature_dim", feature_dim),
            ("hidden_dim", hidden_dim),
            ("num_pre_layers", num_pre_layers),
            ("num_post_layers", num_post_layers),
            ("frame_stacking", frame_stacking),
            ("time_reduction", time_reduction),
        ):
            if value < 1:
                raise ValueError(f"LstmEncoder: {name} must be >= 1, got {value}")
        self.feature_dim = feature_dim
        self.hidden_dim = hidden_dim
        self.frame_stacking = frame_stacking
        self.time_reduction = time_reduction
        self.output_dim = hidden_dim
        self.num_pre_layers = num_pre_layers
        self.num_post_layers = num_post_layers
        self.pre_rnn = nn.LSTM(
            frame_stacking * feature_dim,
            hidden_dim,
            num_layers=num_pre_layers,
            dropout=dropout if num_pre_layers > 1 else 0.0,
            batch_first=True,
        )
        self.post_rnn = nn.LSTM(
            time_reduction * hidden_dim,
            hidden_dim,
            num_layers=num_post_layers,
            dropout=dropout if num_post_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)

    @property
    def subsampling_factor(self) -> int:
        """Input frames per output frame."""
        return self.frame_stacking * self.time_reduction

    def output_frames(self, num_frames):
        """Output frames for ``num_frames`` input frames (an int or an (N,) tensor)."""
        return (num_frames // self.frame_stacking) // self.time_reduction

    def get_init_states(
        self, batch_size: int = 1, device: torch.device = torch.device("cpu")
    ) -> List[Tensor]:
        """Zero LSTM states: ``[h_pre, c_pre, h_post, c_post]``, each (layers, N, hidden)."""
        pre = (self.num_pre_layers, batch_size, self.hidden_dim)
        post = (self.num_post_layers, batch_size, self.hidden_dim)
        return [
            torch.zeros(pre, device=device),
            torch.zeros(pre, device=device),
            torch.zeros(post, device=device),
            torch.zeros(post, device=device),
        ]

    def forward(
        self, x: Tensor, x_lens: Tensor, states: Optional[List[Tensor]] = None
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """
        Args:
          x: (N, T, feature_dim) features; x_lens: (N,) valid frames.
          states: the LSTM states to start from (:meth:`get_init_states`); None: zeros.
        Returns:
          (N, T', hidden_dim) output, (N,) lengths ``output_frames(x_lens)``, the final states
          (meaningful for rows whose input fills the whole chunk: padding is run through the
          LSTMs too, which is harmless for the valid outputs because the layers are causal).
        """
        if states is None:
            states = self.get_init_states(x.size(0), x.device)
        x, x_lens = stack_frames(x, x_lens, self.frame_stacking)
        h_pre, c_pre = states[0], states[1]
        # torch's LSTM rejects T = 0 (an utterance too short for one frame): state unchanged.
        if x.size(1) > 0:
            x, (h_pre, c_pre) = self.pre_rnn(x, (h_pre, c_pre))
        else:
            x = x.new_zeros((x.size(0), 0, self.hidden_dim))
        x, x_lens = stack_frames(self.dropout(x), x_lens, self.time_reduction)
        h_post, c_post = states[2], states[3]
        if x.size(1) > 0:
            x, (h_post, c_post) = self.post_rnn(x, (h_post, c_post))
        else:
            x = x.new_zeros((x.size(0), 0, self.hidden_dim))
        return self.dropout(x), x_lens, [h_pre, c_pre, h_post, c_post]
