"""Chunk-by-chunk decoding of causal models.

* :mod:`~icefall_lite.streaming.states`: stacking per-stream encoder states into a batch;
* :mod:`~icefall_lite.streaming.stream`: one utterance's features, chunk feeding, tail padding,
  and the matching input for simulated streaming;
* :mod:`~icefall_lite.streaming.normalization`: running per-bin feature normalisation;
* :mod:`~icefall_lite.streaming.search`: greedy / modified beam / fast beam search per chunk;
* :mod:`~icefall_lite.streaming.decode`: the loop in which streams join and leave the batch.

The chunk-wise encoder comes from the model (``model.streaming_encoder(chunk, left)``, a
:class:`~icefall_lite.models.interface.ChunkEncoder`; for the Zipformer
``icefall_lite.models.zipformer.streaming.ZipformerStreamingEncoder``).
"""

from icefall_lite.streaming.decode import (
    ChunkEncoder,
    StreamingStats,
    decode_one_chunk,
    streaming_decode,
)
from icefall_lite.streaming.normalization import (
    FeatureNorm,
    StreamingNormalizer,
    load_mel_stats,
    mel_stats,
    save_mel_stats,
)
from icefall_lite.streaming.search import (
    STREAMING_DECODING_METHODS,
    STREAMING_LM_METHODS,
    StreamingSearch,
)
from icefall_lite.streaming.states import stack_states, unstack_states
from icefall_lite.streaming.stream import (
    LOG_EPS,
    TAIL_PADDING_FRAMES,
    DecodeStream,
    encode_utterances,
    front_end_look_ahead,
    pad_tail,
    pad_to_chunks,
    simulated_streaming_input,
)

__all__ = [
    "ChunkEncoder",
    "DecodeStream",
    "FeatureNorm",
    "LOG_EPS",
    "STREAMING_DECODING_METHODS",
    "STREAMING_LM_METHODS",
    "StreamingSearch",
    "StreamingNormalizer",
    "StreamingStats",
    "TAIL_PADDING_FRAMES",
    "decode_one_chunk",
    "encode_utterances",
    "front_end_look_ahead",
    "load_mel_stats",
    "mel_stats",
    "pad_tail",
    "pad_to_chunks",
    "save_mel_stats",
    "simulated_streaming_input",
    "stack_states",
    "streaming_decode",
    "unstack_states",
]
