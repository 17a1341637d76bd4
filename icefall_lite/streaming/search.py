"""The three streaming searches behind one interface: fresh per-stream state, advance over a
chunk, final result. The searches themselves live in :mod:`icefall_lite.search`."""

from typing import Any, List, Optional

import torch
from torch import nn

from icefall_lite import search
from icefall_lite.search import DecodingResult
from icefall_lite.search.lm_fusion import LmFusion

__all__ = ["STREAMING_DECODING_METHODS", "StreamingSearch"]

STREAMING_DECODING_METHODS = ("greedy_search", "modified_beam_search", "fast_beam_search")
# The streaming searches that can fuse a language model.
STREAMING_LM_METHODS = ("modified_beam_search",)


class StreamingSearch:
    """A decoding method bound to its settings.

    Args:
      model: has ``decoder`` and ``joiner`` (an ``AsrModel``, or an ONNX/TorchScript stand-in).
      decoding_method: one of :data:`STREAMING_DECODING_METHODS`.
      max_sym_per_frame: greedy_search: symbols per frame.
      beam_size: modified_beam_search: hypotheses per stream (``--beam-size``).
      beam, max_states, max_contexts: fast_beam_search pruning (``--beam``, ...).
      fusion: modified_beam_search: shallow fusion of a language model (each stream's
        hypotheses carry their LM state from chunk to chunk; the result pays for the end of
        sentence, as the whole-utterance search's does).
    Raises:
      ValueError: an unknown method, or ``fusion`` with a method that cannot fuse.
    """

    def __init__(
        self,
        model: nn.Module,
        decoding_method: str,
        max_sym_per_frame: int = 1,
        beam_size: int = 4,
        beam: float = 4.0,
        max_states: int = 32,
        max_contexts: int = 8,
        fusion: Optional[LmFusion] = None,
    ) -> None:
        if decoding_method not in STREAMING_DECODING_METHODS:
            raise ValueError(
                f"--decoding-method {decoding_method!r} is not supported for streaming; "
                f"choose from {', '.join(STREAMING_DECODING_METHODS)}"
            )
        if fusion is not None and decoding_method not in STREAMING_LM_METHODS:
            raise ValueError(
                f"--decoding-method {decoding_method}: streaming cannot fuse an LM with it; use "
                f"{' or '.join(STREAMING_LM_METHODS)}"
            )
        self.model = model
        self.decoding_method = decoding_method
        self.fusion = fusion
        self.max_sym_per_frame = max_sym_per_frame
        self.beam_size = beam_size
        self.beam = beam
        self.max_states = max_states
        self.max_contexts = max_contexts

    @classmethod
    def from_settings(
        cls, model: nn.Module, settings: Any, fusion: Optional[LmFusion] = None
    ) -> "StreamingSearch":
        """The search that decode flags name: ``settings`` (a mapping or params) has
        ``decoding_method``, ``max_sym_per_frame``, ``beam_size``, ``beam``, ``max_states``
        and ``max_contexts``."""
        return cls(
            model,
            settings["decoding_method"],
            max_sym_per_frame=settings["max_sym_per_frame"],
            beam_size=settings["beam_size"],
            beam=settings["beam"],
            max_states=settings["max_states"],
            max_contexts=settings["max_contexts"],
            fusion=fusion,
        )

    def init_state(self) -> Any:
        """A fresh search state for one stream."""
        if self.decoding_method == "greedy_search":
            return search.init_greedy_streams(self.model, 1)[0]
        if self.decoding_method == "modified_beam_search":
            return search.init_beam_streams(self.model, 1, self.fusion)[0]
        return search.init_fast_beam_streams(self.model, 1)[0]

    def decode_chunk(
        self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor, states: List[Any]
    ) -> None:
        """Advance ``states`` (one per row) over a chunk of encoder output (in place).

        Args:
          encoder_out: (B, T, encoder_dim) unprojected encoder output of the chunk.
          encoder_out_lens: (B,) valid frames per row.
        """
        if self.decoding_method == "greedy_search":
            search.greedy_search_chunk(
                self.model, encoder_out, encoder_out_lens, states, self.max_sym_per_frame
            )
        elif self.decoding_method == "modified_beam_search":
            search.modified_beam_search_chunk(
                self.model, encoder_out, encoder_out_lens, states, self.beam_size, self.fusion
            )
        else:
            search.fast_beam_search_chunk(
                self.model,
                encoder_out,
                encoder_out_lens,
                states,
                self.beam,
                self.max_states,
                self.max_contexts,
            )

    def result(self, state: Any) -> DecodingResult:
        """The best hypothesis of a stream so far."""
        if self.decoding_method == "greedy_search":
            return state.result(self.model.decoder.context_size)
        if self.decoding_method == "modified_beam_search":
            return state.result(self.model.decoder.context_size, fusion=self.fusion)
        return search.best_path(state, self.model.decoder.blank_id)
