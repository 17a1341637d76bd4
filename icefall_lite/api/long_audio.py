"""Long audio with memory bounded independently of its length.

Two ways, both fed fbank chunk by chunk (:func:`icefall_lite.audio.iter_fbank_chunks`):

* a causal model **streams** (:func:`stream_features`): one
  :class:`~icefall_lite.streaming.DecodeStream` fed incrementally, its encoder state carried from
  chunk to chunk; what it computes is what chunk-wise streaming of the whole file computes.
* any model decodes **buffered overlapping windows** (:func:`iter_windows`, each decoded as a
  whole utterance) whose hypotheses :class:`WindowMerger` joins at a word boundary inside each
  overlap. The cut is placed in the widest gap between the tokens of *both* windows within the
  middle half of the overlap: a token both windows heard lies on one side of it in both, so it
  is kept once, and the tokens near a window's edge (heard with little context) are never used.

Both search with **endpointing** (:class:`SegmentingSearch`, as sherpa's endpoint rule 2): once
a token was emitted and then ``endpoint_frames`` of blank followed, the segment is finished and
the search restarts with a fresh state (the encoder state is kept). A transducer's decoder
otherwise carries the context of the last words across a long pause; a model trained on
single utterances then tends to stay on blank after a sentence-final word (the synth model
stops emitting after its first ``... POUND KEY``), and a fast-beam lattice would grow with the
input's length.

Times are encoder frames here; the caller turns them into seconds.
"""

from typing import Callable, Iterable, Iterator, List, Sequence, Tuple

import torch
from torch import Tensor

from icefall_lite.models.interface import ChunkEncoder
from icefall_lite.search.hypothesis import DecodingResult
from icefall_lite.streaming import DecodeStream, StreamingSearch, decode_one_chunk

__all__ = [
    "SegmentingSearch",
    "WindowMerger",
    "decode_windows",
    "iter_windows",
    "stream_features",
]


class SegmentingSearch:
    """A streaming search over one input that restarts at endpoints (module docstring).

    Args:
      search: the streaming search (greedy, modified beam or fast beam).
      endpoint_frames: blank encoder frames after a token that end a segment (0: never).
      max_segment_frames: a segment is also ended after this many frames (bounds the
        fast-beam lattice of speech without pauses; 0: never).
    """

    def __init__(
        self, search: StreamingSearch, endpoint_frames: int, max_segment_frames: int = 0
    ) -> None:
        self.search = search
        self.endpoint_frames = endpoint_frames
        self.max_segment_frames = max_segment_frames
        self.state = search.init_state()
        self.offset = 0  # encoder frames before the current segment
        self.tokens: List[int] = []
        self.timestamps: List[int] = []
        self.score = 0.0
        self.segments = 0  # how many segments were finished at an endpoint

    def _commit(self, result: DecodingResult) -> None:
        self.tokens += result.tokens
        self.timestamps += [t + self.offset for t in result.timestamps]
        self.score += float(result.score)
        self.offset += self.state.num_frames
        self.state = self.search.init_state()

    def after_chunk(self) -> None:
        """Check for an endpoint after the state advanced over a chunk."""
        frames = self.state.num_frames
        if self.endpoint_frames <= 0 and self.max_segment_frames <= 0:
            return
        result = self.search.result(self.state)
        last = result.timestamps[-1] + 1 if result.tokens else 0
        ended = self.endpoint_frames > 0 and result.tokens and frames - last >= self.endpoint_frames
        too_long = self.max_segment_frames > 0 and frames >= self.max_segment_frames
        if ended or too_long:
            self.segments += int(bool(ended))
            self._commit(result)

    def decode(self, encoder_out: Tensor, piece_frames: int = 8) -> None:
        """Advance over (T, C) encoder output of this input, ``piece_frames`` at a time."""
        for start in range(0, encoder_out.size(0), piece_frames):
            piece = encoder_out[start : start + piece_frames].unsqueeze(0)
            lens = torch.tensor([piece.size(1)], device=piece.device)
            self.search.decode_chunk(piece, lens, [self.state])
            self.after_chunk()

    def result(self) -> DecodingResult:
        """Everything so far: finished segments and the current one."""
        last = self.search.result(self.state)
        return DecodingResult(
            tokens=self.tokens + last.tokens,
            timestamps=self.timestamps + [t + self.offset for t in last.timestamps],
            score=self.score + float(last.score),
        )


class _SegmentingAdapter:
    """Lets :func:`decode_one_chunk` drive a :class:`SegmentingSearch`: the stream's search
    state is the segmenting search's current one."""

    def __init__(self, segmenting: SegmentingSearch) -> None:
        self.segmenting = segmenting

    def decode_chunk(self, encoder_out: Tensor, encoder_out_lens: Tensor, states: List) -> None:
        self.segmenting.search.decode_chunk(encoder_out, encoder_out_lens, [self.segmenting.state])
        self.segmenting.after_chunk()


@torch.no_grad()
def stream_features(
    encoder: ChunkEncoder,
    search: StreamingSearch,
    feature_chunks: Iterable[Tensor],
    device: torch.device,
    endpoint_frames: int = 0,
    max_segment_frames: int = 0,
    key: str = "audio",
) -> DecodingResult:
    """Decode one long input chunk by chunk as its features arrive.

    Args:
      encoder: the model's chunk-wise encoder.
      search: a streaming search.
      feature_chunks: consecutive (T_i, F) fbank pieces of the input.
      endpoint_frames, max_segment_frames: see :class:`SegmentingSearch`.
    Returns:
      the result; timestamps in encoder frames from the start.
    """
    segmenting = SegmentingSearch(search, endpoint_frames, max_segment_frames)
    adapter = _SegmentingAdapter(segmenting)
    stream = None
    for chunk in feature_chunks:
        chunk = chunk.to(device)
        if stream is None:
            stream = DecodeStream(
                key=key,
                features=chunk,
                states=encoder.get_init_states(1, device),
                search_state=None,
                decode_chunk_len=encoder.decode_chunk_len,
                pad_length=encoder.pad_length,
                finished=False,
            )
        else:
            stream.append_features(chunk)
        while stream.ready:
            decode_one_chunk(encoder, adapter, [stream])
    if stream is None:
        return DecodingResult(tokens=[], timestamps=[], score=0.0)
    stream.finish()
    while not stream.done:
        decode_one_chunk(encoder, adapter, [stream])
    return segmenting.result()


def iter_windows(
    feature_chunks: Iterable[Tensor], window_frames: int, hop_frames: int
) -> Iterator[Tuple[int, Tensor]]:
    """Overlapping windows over a feature stream, holding at most one window in memory.

    Args:
      feature_chunks: consecutive (T_i, F) fbank pieces.
      window_frames: fbank frames per window.
      hop_frames: frames between window starts (< window_frames; the rest is the overlap).
    Yields:
      (first frame, (T, F) features) per window; the last window may be shorter, and every
      frame is in some window.
    """
    if not 0 < hop_frames < window_frames:
        raise ValueError(f"need 0 < hop ({hop_frames}) < window ({window_frames}) frames")
    buffer: List[Tensor] = []
    buffered = 0
    start = 0
    yielded = False
    for chunk in feature_chunks:
        buffer.append(chunk)
        buffered += chunk.size(0)
        while buffered >= window_frames:
            frames = torch.cat(buffer)
            yield start, frames[:window_frames]
            yielded = True
            start += hop_frames
            rest = frames[hop_frames:]
            buffer, buffered = [rest], rest.size(0)
    # The tail, unless the last window already covered it.
    if buffered > 0 and (not yielded or buffered > window_frames - hop_frames):
        yield start, torch.cat(buffer)


class WindowMerger:
    """Joins the hypotheses of consecutive overlapping windows (see the module docstring).

    The join is made at a frame in the widest gap between the tokens of *both* windows in the
    middle half of their overlap: the earlier window's tokens before it are kept, the later
    window's from it on. No token of either window lies near the join, so a token both heard
    (placed a frame or two apart) is kept once, and a word running across the join is taken
    partly from each window without losing or repeating a piece.
    """

    def __init__(self) -> None:
        self.tokens: List[int] = []
        self.times: List[int] = []
        self.score = 0.0
        self.end = 0  # encoder frame where the last window ended
        self.cuts: List[float] = []  # where each join was made (encoder frames)

    def add(self, result: DecodingResult, start: int, end: int) -> None:
        """Add the next window's result.

        Args:
          result: timestamps in encoder frames from the window's start.
          start, end: the window's first and one-past-last encoder frame, on the whole
            input's scale (``start`` no later than the previous window's ``end``).
        """
        times = [t + start for t in result.timestamps]
        self.score += float(result.score)
        if not self.cuts:  # the first window
            self.tokens, self.times, self.end = list(result.tokens), times, end
            self.cuts.append(float(start))
            return
        if start > self.end:
            raise ValueError(f"window starting at frame {start} leaves a gap after {self.end}")
        cut = self._cut(times, start)
        self.cuts.append(cut)
        keep = sum(1 for t in self.times if t < cut)  # times are non-decreasing
        first = sum(1 for t in times if t < cut)
        self.tokens = self.tokens[:keep] + list(result.tokens[first:])
        self.times = self.times[:keep] + times[first:]
        self.end = max(self.end, end)

    def _cut(self, times: Sequence[int], start: int) -> float:
        """The middle of the widest gap between token times (of both windows) in the middle
        half of the overlap ``[start, self.end)``."""
        quarter = (self.end - start) / 4.0
        lo, hi = start + quarter, self.end - quarter
        inside = {float(t) for t in list(self.times) + list(times) if lo < t < hi}
        points = sorted(inside | {lo, hi})
        gaps = [(b - a, (a + b) / 2.0) for a, b in zip(points, points[1:])]
        return max(gaps)[1] if gaps else (lo + hi) / 2.0

    def result(self) -> DecodingResult:
        """Everything merged so far (timestamps in encoder frames of the whole input)."""
        return DecodingResult(
            tokens=list(self.tokens), timestamps=list(self.times), score=self.score
        )


def decode_windows(
    windows: Iterable[Tuple[int, Tensor]],
    decode_batch: Callable[[List[Tensor]], List[DecodingResult]],
    output_frames: Callable[[int], int],
    subsampling: int,
    batch_size: int = 1,
) -> DecodingResult:
    """Decode windows from :func:`iter_windows` ``batch_size`` at a time and merge them.

    Args:
      decode_batch: (T_i, F) features of some windows -> their results (encoder frames).
      output_frames: fbank frames -> encoder frames (the model's ``output_frames``).
      subsampling: fbank frames per encoder frame (window starts are multiples of it).
    """
    merger = WindowMerger()
    pending: List[Tuple[int, Tensor]] = []

    def flush() -> None:
        results = decode_batch([f for _, f in pending])
        for (first, feats), result in zip(pending, results):
            start = first // subsampling
            merger.add(result, start, start + int(output_frames(feats.size(0))))
        pending.clear()

    for window in windows:
        pending.append(window)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    return merger.result()
