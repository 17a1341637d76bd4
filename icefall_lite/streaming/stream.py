"""One utterance being decoded chunk by chunk: its features, encoder state and search state.

Feature feeding follows icefall's streaming Zipformer: the features get
``TAIL_PADDING_FRAMES`` frames of ``LOG_EPS`` (silence in log-mel) appended so the last spoken
frames leave the encoder's look-ahead; each chunk hands the encoder ``decode_chunk_len +
pad_length`` frames and then advances by ``decode_chunk_len``, so consecutive chunks overlap by
``pad_length`` frames (the front end's receptive field and look-ahead).
"""

import math
from typing import Any, List, Tuple

import torch
from torch import Tensor

__all__ = [
    "DecodeStream",
    "LOG_EPS",
    "TAIL_PADDING_FRAMES",
    "encode_utterances",
    "front_end_look_ahead",
    "pad_tail",
    "pad_to_chunks",
    "simulated_streaming_input",
    "streaming_num_frames",
]

LOG_EPS = math.log(1e-10)
TAIL_PADDING_FRAMES = 30


def pad_tail(
    features: Tensor, feature_lens: Tensor, num_frames: int = TAIL_PADDING_FRAMES
) -> Tuple[Tensor, Tensor]:
    """Append ``num_frames`` LOG_EPS frames after each utterance's valid frames.

    Simulated streaming (a causal model decoding whole utterances) must use this too, so that
    it sees exactly the frames chunk-wise streaming sees.

    Args:
      features: (N, T, F) fbank, padded past ``feature_lens`` with anything.
      feature_lens: (N,) valid frames.
    Returns:
      (N, T', F) features with T' = max(feature_lens) + num_frames, and (N,) new lengths.
    """
    n, _, f = features.shape
    new_lens = feature_lens + num_frames
    out = features.new_full((n, int(new_lens.max()), f), LOG_EPS)
    for i, length in enumerate(feature_lens.tolist()):
        out[i, :length] = features[i, :length]
    return out, new_lens


def front_end_look_ahead(encoder_embed: torch.nn.Module) -> int:
    """Fbank frames (100 Hz) the front end looks ahead: twice its ConvNeXt's time padding."""
    return 2 * int(encoder_embed.convnext.padding[0])


def streaming_num_frames(
    num_frames: int,
    decode_chunk_len: int,
    pad_length: int,
    tail_padding_frames: int = TAIL_PADDING_FRAMES,
) -> int:
    """Frames an utterance of ``num_frames`` has once padded for streaming: at least
    ``tail_padding_frames`` of LOG_EPS, and enough more that it splits into whole chunks
    (``k * decode_chunk_len + pad_length`` frames).

    Whole chunks matter: the Zipformer's downsampled stacks pool groups of frames, and a group
    straddling the end of the valid frames would mix in padding, whose values differ between
    chunk-wise and whole-utterance encoding. Ending on a chunk boundary (a multiple of every
    downsampling factor) keeps both computations identical.
    """
    wanted = num_frames + tail_padding_frames - pad_length
    num_chunks = max(1, -(-wanted // decode_chunk_len))
    return num_chunks * decode_chunk_len + pad_length


def pad_to_chunks(
    features: Tensor,
    feature_lens: Tensor,
    decode_chunk_len: int,
    pad_length: int = 0,
    tail_padding_frames: int = TAIL_PADDING_FRAMES,
    pad_value: float = LOG_EPS,
) -> Tuple[Tensor, Tensor]:
    """Each utterance padded with ``pad_value`` as :class:`DecodeStream` pads it (whole chunks,
    see :func:`streaming_num_frames`), for whole-utterance decoding that must see exactly the
    frames chunk-wise decoding sees (an encoder without look-ahead, e.g. the LSTM's).

    Args:
      features: (N, T, F); feature_lens: (N,) valid frames.
    Returns:
      (N, T', F) padded features and (N,) padded lengths.
    """
    padded_lens = torch.tensor(
        [
            streaming_num_frames(n, decode_chunk_len, pad_length, tail_padding_frames)
            for n in feature_lens.tolist()
        ],
        device=feature_lens.device,
    )
    n, _, f = features.shape
    out = features.new_full((n, int(padded_lens.max()), f), pad_value)
    for i, length in enumerate(feature_lens.tolist()):
        out[i, :length] = features[i, :length]
    return out, padded_lens


def simulated_streaming_input(
    encoder_embed: torch.nn.Module,
    features: Tensor,
    feature_lens: Tensor,
    decode_chunk_len: int,
    tail_padding_frames: int = TAIL_PADDING_FRAMES,
) -> Tuple[Tensor, Tensor]:
    """Input for decoding a causal model on whole utterances (``decode.py --causal 1``) so that
    it computes exactly what chunk-wise streaming computes.

    Three things make the two agree: the same LOG_EPS padding to whole chunks (see
    :func:`streaming_num_frames`), and lengths reduced by the front end's look-ahead.
    Chunk-wise, the last front-end frames (whose ConvNeXt look-ahead runs past the input) are
    never computed; on a whole utterance they are computed from zero padding, and attended to
    by the frames of the last chunk. Shortening the lengths masks them, so every encoder output
    frame matches and the frame counts are equal.

    Args:
      encoder_embed: the model's front end (for its look-ahead).
      features: (N, T, F) fbank; feature_lens: (N,) valid frames.
      decode_chunk_len: fbank frames per chunk (2 * --chunk-size).
    Returns:
      (N, T', F) padded features and (N,) lengths to pass to ``model.forward_encoder``.
    """
    look_ahead = front_end_look_ahead(encoder_embed)
    pad_length = 7 + look_ahead
    padded_lens = torch.tensor(
        [
            streaming_num_frames(n, decode_chunk_len, pad_length, tail_padding_frames)
            for n in feature_lens.tolist()
        ],
        device=feature_lens.device,
    )
    n, _, f = features.shape
    out = features.new_full((n, int(padded_lens.max()), f), LOG_EPS)
    for i, length in enumerate(feature_lens.tolist()):
        out[i, :length] = features[i, :length]
    return out, padded_lens - look_ahead


def encode_utterances(
    model: torch.nn.Module,
    features: Tensor,
    feature_lens: Tensor,
    causal: bool = False,
    chunk_size: int = -1,
) -> Tuple[Tensor, Tensor]:
    """Encoder output of whole utterances as the searches see it, for decode.py and the Python
    API alike (so both give the same results).

    * a non-causal model: the features as they are;
    * a causal model with ``chunk_size > 0``: simulated streaming
      (:func:`simulated_streaming_input`), which computes what chunk-wise streaming computes;
    * a causal model with ``chunk_size <= 0`` (full context): ``TAIL_PADDING_FRAMES`` of
      LOG_EPS appended, since the chunk-causal convolutions still want right context at the end.

    Args:
      model: has ``forward_encoder`` (and, when causal, ``encoder_embed``).
      features: (N, T, F) fbank, padded past ``feature_lens``.
      feature_lens: (N,) valid frames.
      chunk_size: 50 Hz frames per chunk.
    Returns:
      (N, T', C) encoder output and (N,) lengths.
    """
    if causal and chunk_size > 0:
        features, feature_lens = simulated_streaming_input(
            model.encoder_embed, features, feature_lens, 2 * chunk_size
        )
    elif causal:
        features = torch.nn.functional.pad(features, (0, 0, 0, TAIL_PADDING_FRAMES), value=LOG_EPS)
        feature_lens = feature_lens + TAIL_PADDING_FRAMES
    return model.forward_encoder(features, feature_lens)


class DecodeStream:
    """Decoding state of one utterance.

    The features are either all given at once (``finished=True``, the default) or fed as they
    are computed (``finished=False``, then :meth:`append_features` and :meth:`finish`): a long
    file is then decoded with memory bounded by the chunk size, whatever its length, since the
    frames a chunk has consumed are dropped.

    Args:
      key: an id for the results (the cut id).
      features: (T, F) fbank of the utterance (or of its first part), without tail padding.
      states: the encoder state of this stream (batch size 1).
      search_state: the search's per-stream state (e.g. ``GreedyStream``).
      decode_chunk_len: fbank frames (100 Hz) the stream advances per chunk (2 * chunk_size).
      pad_length: extra frames each chunk needs beyond ``decode_chunk_len``.
      tail_padding_frames: least LOG_EPS frames appended to the features (more are added to
        end on a whole chunk, see :func:`streaming_num_frames`).
      flush_partial_chunk: also decode a last chunk shorter than ``chunk_frames`` (padded;
        the default). False mimics sherpa-onnx, which decodes full chunks only.
      normalizer: a :class:`~icefall_lite.streaming.normalization.StreamingNormalizer` applied
        to the real frames as they are first handed out (None: features used as given).
      pad_value: what pads the features after their end (LOG_EPS, silence in log-mel; 0 for
        normalised features).
      finished: ``features`` are the whole utterance (else more come by
        :meth:`append_features`).
    """

    def __init__(
        self,
        key: str,
        features: Tensor,
        states: List[Tensor],
        search_state: Any,
        decode_chunk_len: int,
        pad_length: int,
        tail_padding_frames: int = TAIL_PADDING_FRAMES,
        flush_partial_chunk: bool = True,
        normalizer: Any = None,
        pad_value: float = LOG_EPS,
        finished: bool = True,
    ) -> None:
        if features.ndim != 2:
            raise ValueError(f"{key}: features must be (T, F), got shape {tuple(features.shape)}")
        if decode_chunk_len <= 0:
            raise ValueError(f"decode_chunk_len must be positive, got {decode_chunk_len}")
        self.key = key
        self.normalizer = normalizer
        self.pad_value = pad_value
        # Frames before num_normalized (counted from the utterance's start) are normalised.
        self.num_normalized = 0
        self.states = states
        self.search_state = search_state
        self.decode_chunk_len = decode_chunk_len
        self.pad_length = pad_length
        self.tail_padding_frames = tail_padding_frames
        self.num_processed_frames = 0
        self.flush_partial_chunk = flush_partial_chunk
        # Frames before ``_offset`` were consumed and dropped (only when fed incrementally).
        self._offset = 0
        self._num_input_frames = features.size(0)
        # Normalised in place as handed out: the caller's tensor is left alone.
        self.features = features.clone() if normalizer is not None else features
        self.finished = False
        if finished:
            self.finish()

    def append_features(self, features: Tensor) -> None:
        """Add (T, F) frames after those given so far (before :meth:`finish`)."""
        if self.finished:
            raise RuntimeError(f"{self.key}: append_features() after finish()")
        # Keep only what the next chunks still read, so memory does not grow with the file.
        keep_from = self.num_processed_frames - self._offset
        self.features = torch.cat([self.features[keep_from:], features.to(self.features)], dim=0)
        self._offset = self.num_processed_frames
        self._num_input_frames += features.size(0)

    def finish(self) -> None:
        """No more features: append the tail padding (to whole chunks)."""
        if self.finished:
            return
        total = streaming_num_frames(
            self._num_input_frames,
            self.decode_chunk_len,
            self.pad_length,
            self.tail_padding_frames,
        )
        tail = self.features.new_full(
            (total - self._num_input_frames, self.features.size(1)), self.pad_value
        )
        self.features = torch.cat([self.features, tail], dim=0)
        self.finished = True

    @property
    def num_real_frames(self) -> int:
        """Feature frames given so far (the tail padding not counted)."""
        return self._num_input_frames

    @property
    def chunk_frames(self) -> int:
        """Frames handed to the encoder per chunk (sherpa-onnx's ``T``)."""
        return self.decode_chunk_len + self.pad_length

    def _remaining(self) -> int:
        return self._offset + self.features.size(0) - self.num_processed_frames

    @property
    def ready(self) -> bool:
        """Whether :meth:`next_chunk` can be called now: a whole chunk is there, or the
        stream is finished and not done."""
        if self.finished:
            return not self.done
        return self._remaining() >= self.chunk_frames

    @property
    def done(self) -> bool:
        """True once no further chunk would give encoder output: fewer than ``pad_length``
        frames are left (or, without ``flush_partial_chunk``, less than a full chunk); never
        before :meth:`finish`."""
        if not self.finished:
            return False
        remaining = self._remaining()
        if self.flush_partial_chunk:
            return remaining <= self.pad_length
        return remaining <= self.chunk_frames

    def next_chunk(self) -> Tensor:
        """The next (<= chunk_frames, F) frames; advances by ``decode_chunk_len``."""
        if not self.ready:
            what = "a finished stream" if self.finished else "a stream short of a whole chunk"
            raise RuntimeError(f"{self.key}: next_chunk() on {what}")
        start = self.num_processed_frames - self._offset
        if self.normalizer is not None:
            # Real frames are normalised once, in order, when first handed out (chunks may
            # overlap); indices from the utterance's start, less the frames already dropped.
            end = min(self.num_processed_frames + self.chunk_frames, self._num_input_frames)
            if end > self.num_normalized:
                lo, hi = self.num_normalized - self._offset, end - self._offset
                self.features[lo:hi] = self.normalizer(self.features[lo:hi])
                self.num_normalized = end
        chunk = self.features[start : start + self.chunk_frames]
        self.num_processed_frames += self.decode_chunk_len
        return chunk
