"""The model interface: what the training loop, the searches, streaming and export ask of a model.

A model family (``models/zipformer/``, the Jasper/QuartzNet CTC models of ``models/conv_ctc/``;
the LSTM transducer of ``models/lstm_transducer/``) plugs in by giving its model these members and
a ``register_model_family`` call in ``models/__init__.py``; nothing in ``training/``, ``search/``,
``streaming/``, ``export/`` or ``cli/`` needs to know which family it is.

* every model: ``forward(x, x_lens, y, prune_range, am_scale, lm_scale)`` -> the summed
  ``(simple_loss, pruned_loss, ctc_loss)`` (a zero scalar for a head it does not have, see
  ``use_transducer`` / ``use_ctc``), used by ``training.loss``; ``forward_encoder(x, x_lens)``
  -> encoder output ``(N, T', C)`` and lengths ``(N,)``, used by decoding and export;
  ``output_frames(num_frames)`` -> encoder frames of that many input frames (the loss per
  frame in the logs, the cut filter's "too short for its tokens"); ``vocab_size``.
* a CTC head: ``ctc_output`` maps encoder output to log-probabilities ``(N, T', V)`` (blank 0);
  ``None`` without one.
* a transducer: ``decoder`` (``vocab_size``, ``blank_id``, ``context_size``,
  ``forward(y, need_pad)``; stateless, or a recurrent decoder keeping its state in the search's
  hypotheses) and ``joiner`` (``encoder_proj``, ``decoder_proj``,
  ``forward(enc, dec, project_input)``); ``None`` without one.
* streaming (causal models): ``streaming_encoder(chunk_size, left_context_frames)`` -> a
  :class:`ChunkEncoder` with the initial state (``get_init_states``) and the per-chunk call.

Training schedules and adaptive regularisers are found by walking the model's modules
(:func:`set_batch_count`, :func:`get_regulariser_state`, :func:`set_regulariser_state`): a family
whose modules have a ``batch_count`` or ``Whiten`` regularisers gets them, any other model is left
alone.
"""

from typing import List, Optional, Protocol, Tuple, runtime_checkable

import torch
from torch import Tensor, nn

from icefall_lite.models.zipformer.scaling import (
    get_regulariser_state,
    set_batch_count,
    set_regulariser_state,
)

__all__ = [
    "AsrModelInterface",
    "ChunkEncoder",
    "get_regulariser_state",
    "has_ctc_head",
    "has_transducer",
    "set_batch_count",
    "set_regulariser_state",
]


class ChunkEncoder(Protocol):
    """What chunk-by-chunk decoding needs from a streaming encoder (PyTorch, TorchScript or
    ONNX).

    Attributes:
      decode_chunk_len: fbank frames a stream advances per chunk.
      pad_length: extra frames per chunk (so a chunk is ``decode_chunk_len + pad_length``).
      state_batch_dims: batch axis of each state tensor.
    """

    decode_chunk_len: int
    pad_length: int
    state_batch_dims: List[int]

    def __call__(
        self, x: Tensor, x_lens: Tensor, states: List[Tensor]
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """(B, T, F) features, (B,) lengths, state -> (B, T', C) output, (B,) lengths, state."""

    def get_init_states(self, batch_size: int, device: torch.device) -> List[Tensor]:
        """The state of ``batch_size`` fresh streams."""


@runtime_checkable
class AsrModelInterface(Protocol):
    """An acoustic model as the rest of the library sees it (see the module docstring)."""

    vocab_size: int
    use_transducer: bool
    use_ctc: bool
    decoder: Optional[nn.Module]
    joiner: Optional[nn.Module]

    def forward(
        self,
        x: Tensor,
        x_lens: Tensor,
        y: List[List[int]],
        prune_range: int = 5,
        am_scale: float = 0.0,
        lm_scale: float = 0.0,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """(N, T, F) features, (N,) lengths, N token-id lists -> summed (simple, pruned, ctc)."""

    def forward_encoder(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        """(N, T, F) features, (N,) lengths -> (N, T', C) encoder output, (N,) lengths."""

    def output_frames(self, num_frames):
        """Encoder frames for ``num_frames`` input frames (an int or an (N,) tensor)."""

    def streaming_encoder(self, chunk_size: int, left_context_frames: int) -> ChunkEncoder:
        """The chunk-wise encoder of a causal model (``ValueError`` for another)."""


def has_ctc_head(model: nn.Module) -> bool:
    """Whether ``model`` has a CTC head (``ctc_output``)."""
    return getattr(model, "ctc_output", None) is not None


def has_transducer(model: nn.Module) -> bool:
    """Whether ``model`` has a transducer (its ``decoder``; the ``joiner`` comes with it)."""
    return getattr(model, "decoder", None) is not None
