"""Greedy search for transducers, batched over utterances, with a per-chunk step for streaming.

At each encoder frame the most probable symbol is taken; a non-blank symbol updates the decoder and
the same frame is tried again, up to ``max_sym_per_frame`` symbols, after which (or on blank) the
search moves to the next frame.
"""

from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch
from torch import nn

from icefall_lite.search.hypothesis import DecodingResult
from icefall_lite.search.transducer_common import (
    check_encoder_out,
    decoder_step,
    initial_context,
    joiner_log_probs,
)


@dataclass
class GreedyStream:
    """Decoding state of one stream, kept between chunks.

    Attributes:
      ys: decoder history (start context followed by the emitted tokens).
      timestamps: encoder frame of each emitted token, counted from the start of the stream.
      score: sum of the log-probabilities of every symbol chosen (blanks included).
      num_frames: encoder frames consumed so far (offset of the next chunk's frame 0).
      decoder_out: cached (joiner_dim,) projected decoder output for ``ys``.
      decoder_state: a recurrent decoder's state after ``ys`` (set with ``decoder_out``; None
        for a stateless decoder).
    """

    ys: List[int]
    timestamps: List[int] = field(default_factory=list)
    score: float = 0.0
    num_frames: int = 0
    decoder_out: Optional[torch.Tensor] = None
    decoder_state: Any = None

    def result(self, context_size: int) -> DecodingResult:
        return DecodingResult(
            tokens=self.ys[context_size:], timestamps=list(self.timestamps), score=self.score
        )


def init_greedy_streams(model: nn.Module, num_streams: int) -> List[GreedyStream]:
    """Fresh states for ``num_streams`` utterances."""
    context = initial_context(model.decoder.context_size, model.decoder.blank_id)
    return [GreedyStream(ys=list(context)) for _ in range(num_streams)]


@torch.no_grad()
def greedy_search_chunk(
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    streams: List[GreedyStream],
    max_sym_per_frame: int = 1,
) -> None:
    """Advance each stream over its frames of a chunk (in place).

    Args:
      encoder_out: (B, T, encoder_dim) encoder output of the chunk, one row per stream.
      encoder_out_lens: (B,) valid frames of each row.
      streams: B states, updated in place.
      max_sym_per_frame: most non-blank symbols emitted on one frame (>= 1).
    """
    check_encoder_out(encoder_out, encoder_out_lens)
    if max_sym_per_frame < 1:
        raise ValueError(f"max_sym_per_frame must be >= 1, got {max_sym_per_frame}")
    if len(streams) != encoder_out.size(0):
        raise ValueError(f"got {len(streams)} streams for a batch of {encoder_out.size(0)}")
    blank_id = model.decoder.blank_id
    context_size = model.decoder.context_size

    missing = [i for i, s in enumerate(streams) if s.decoder_out is None]
    if missing:
        # A fresh stream: its history is the start context, from the initial decoder state.
        fresh, fresh_states = decoder_step(
            model, [streams[i].ys[-context_size:] for i in missing], [None] * len(missing)
        )
        for row, i in enumerate(missing):
            streams[i].decoder_out = fresh[row]
            streams[i].decoder_state = fresh_states[row]
    decoder_out = torch.stack([s.decoder_out for s in streams])  # (B, J)

    encoder_proj = model.joiner.encoder_proj(encoder_out)  # (B, T, J)
    lens = encoder_out_lens.tolist()
    for t in range(encoder_out.size(1)):
        candidates = [i for i, n in enumerate(lens) if t < n]
        for _ in range(max_sym_per_frame):
            if not candidates:
                break
            rows = torch.tensor(candidates, device=encoder_out.device)
            log_probs = joiner_log_probs(model, encoder_proj[rows, t], decoder_out[rows])
            best_log_prob, best_token = log_probs.max(dim=-1)
            emitted = []
            states_before = []  # the decoder state before each emitted token
            for row, i in enumerate(candidates):
                stream = streams[i]
                stream.score += float(best_log_prob[row])
                token = int(best_token[row])
                if token != blank_id:
                    states_before.append(stream.decoder_state)
                    stream.ys.append(token)
                    stream.timestamps.append(stream.num_frames + t)
                    emitted.append(i)
            if emitted:
                # Only streams that emitted need a new decoder output.
                new_out, new_states = decoder_step(
                    model, [streams[i].ys[-context_size:] for i in emitted], states_before
                )
                decoder_out[torch.tensor(emitted, device=decoder_out.device)] = new_out
                for i, state in zip(emitted, new_states):
                    streams[i].decoder_state = state
            candidates = emitted
    for i, stream in enumerate(streams):
        stream.num_frames += lens[i]
        stream.decoder_out = decoder_out[i]


def greedy_search(
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    max_sym_per_frame: int = 1,
) -> List[DecodingResult]:
    """Greedy search over whole utterances, batched.

    Args:
      model: has ``decoder`` and ``joiner`` (see :mod:`transducer_common`).
      encoder_out: (N, T, encoder_dim).
      encoder_out_lens: (N,) valid frames per utterance.
      max_sym_per_frame: most non-blank symbols emitted on one frame.
    Returns:
      N results in input order.
    """
    streams = init_greedy_streams(model, encoder_out.size(0))
    greedy_search_chunk(model, encoder_out, encoder_out_lens, streams, max_sym_per_frame)
    return [s.result(model.decoder.context_size) for s in streams]
