"""The chunk-by-chunk decode loop: up to ``num_decode_streams`` utterances are decoded together;
a stream joins the batch when a slot is free and leaves it as soon as its last chunk is done.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from icefall_lite.models.interface import ChunkEncoder
from icefall_lite.search import DecodingResult
from icefall_lite.streaming.normalization import FeatureNorm
from icefall_lite.streaming.search import StreamingSearch
from icefall_lite.streaming.states import stack_states, unstack_states
from icefall_lite.streaming.stream import LOG_EPS, TAIL_PADDING_FRAMES, DecodeStream

__all__ = ["ChunkEncoder", "StreamingStats", "decode_one_chunk", "streaming_decode"]


@dataclass
class StreamingStats:
    """Timing of the loop.

    Attributes:
      chunk_seconds: wall time of each :func:`decode_one_chunk` call (encoder + search).
      chunk_batch_sizes: streams in each call.
      audio_seconds: total duration of the decoded features (10 ms frames, no tail padding).
    """

    chunk_seconds: List[float] = field(default_factory=list)
    chunk_batch_sizes: List[int] = field(default_factory=list)
    audio_seconds: float = 0.0

    @property
    def total_seconds(self) -> float:
        return sum(self.chunk_seconds)


@torch.no_grad()
def decode_one_chunk(
    encoder: ChunkEncoder, search: StreamingSearch, streams: Sequence[DecodeStream]
) -> None:
    """Run the encoder on the next chunk of each stream (one batch) and advance their searches.

    A stream with fewer than ``chunk_frames`` frames left (its last chunk) is padded with
    LOG_EPS; its length tells the encoder which frames are real.
    """
    chunks = [s.next_chunk() for s in streams]
    chunk_frames = streams[0].chunk_frames
    x = chunks[0].new_full((len(chunks), chunk_frames, chunks[0].size(1)), LOG_EPS)
    for i, chunk in enumerate(chunks):
        x[i, : chunk.size(0)] = chunk
    x_lens = torch.tensor([c.size(0) for c in chunks], dtype=torch.int64, device=x.device)
    states = stack_states([s.states for s in streams], encoder.state_batch_dims)
    encoder_out, encoder_out_lens, new_states = encoder(x, x_lens, states)
    # A short last chunk can leave no complete output frame.
    encoder_out_lens = encoder_out_lens.clamp(min=0, max=encoder_out.size(1))
    search.decode_chunk(encoder_out, encoder_out_lens, [s.search_state for s in streams])
    for stream, state in zip(streams, unstack_states(new_states, encoder.state_batch_dims)):
        stream.states = state


def streaming_decode(
    encoder: ChunkEncoder,
    search: StreamingSearch,
    utterances: Iterable[Tuple[str, Tensor]],
    num_decode_streams: int = 2000,
    device: Optional[torch.device] = None,
    tail_padding_frames: int = TAIL_PADDING_FRAMES,
    flush_partial_chunk: bool = True,
    log_interval: int = 0,
    feature_norm: Optional[FeatureNorm] = None,
) -> Tuple[Dict[str, DecodingResult], StreamingStats]:
    """Decode utterances chunk by chunk, ``num_decode_streams`` at a time.

    Args:
      encoder: see :class:`ChunkEncoder`.
      search: the decoding method.
      utterances: (key, (T, F) fbank) pairs, read lazily (one new stream per free slot).
      num_decode_streams: most streams decoded together (``--num-decode-streams``).
      device: where features and states go (default: CPU).
      tail_padding_frames: LOG_EPS frames appended to each utterance.
      flush_partial_chunk: see :class:`DecodeStream`.
      log_interval: log progress every this many finished utterances (0: never).
      feature_norm: normalise each stream's features (a model trained on per-utterance
        normalised ones): running statistics frame by frame, or over the whole utterance; None:
        features as given.
    Returns:
      results by key, and the loop's timing.
    """
    if num_decode_streams < 1:
        raise ValueError(f"--num-decode-streams must be >= 1, got {num_decode_streams}")
    device = device or torch.device("cpu")
    results: Dict[str, DecodingResult] = {}
    stats = StreamingStats()
    pending = iter(utterances)
    active: List[DecodeStream] = []
    exhausted = False
    while True:
        while not exhausted and len(active) < num_decode_streams:
            try:
                key, features = next(pending)
            except StopIteration:
                exhausted = True
                break
            if key in results or any(s.key == key for s in active):
                raise ValueError(f"utterance id {key!r} appears twice")
            stats.audio_seconds += features.size(0) * 0.01
            features = features.to(device)
            normalizer, pad_value = None, LOG_EPS
            if feature_norm is not None:
                features, normalizer = feature_norm.start(features)
                pad_value = feature_norm.pad_value
            stream = DecodeStream(
                key=key,
                features=features,
                states=encoder.get_init_states(1, device),
                search_state=search.init_state(),
                decode_chunk_len=encoder.decode_chunk_len,
                pad_length=encoder.pad_length,
                tail_padding_frames=tail_padding_frames,
                flush_partial_chunk=flush_partial_chunk,
                normalizer=normalizer,
                pad_value=pad_value,
            )
            if stream.done:  # too short to give any encoder output
                results[key] = search.result(stream.search_state)
                if feature_norm is not None:
                    feature_norm.finish(normalizer)
                continue
            active.append(stream)
        if not active:
            break
        start = time.perf_counter()
        decode_one_chunk(encoder, search, active)
        stats.chunk_seconds.append(time.perf_counter() - start)
        stats.chunk_batch_sizes.append(len(active))
        still_active = []
        for stream in active:
            if stream.done:
                results[stream.key] = search.result(stream.search_state)
                if feature_norm is not None:
                    feature_norm.finish(stream.normalizer)
                if log_interval > 0 and len(results) % log_interval == 0:
                    logging.info(f"streaming decode: {len(results)} utterances done")
            else:
                still_active.append(stream)
        active = still_active
    return results, stats
