"""Chunk-by-chunk decoding of causal models.

* :mod:`~icefall_lite.streaming.states`: stacking per-stream encoder states into a batch;
* :mod:`~icefall_lite.streaming.stream`: one utterance's features, chunk feeding, tail padding,
  and the matching input for simulated streaming;
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
from icefall_lite.streaming.search import STREAMING_DECODING_METHODS, StreamingSearch
from icefall_lite.streaming.states import stack_states, unstack_states
from icefall_lite.streaming.stream import (
    LOG_EPS,
    TAIL_PADDING_FRAMES,
    DecodeStream,
    encode_utterances,
    front_end_look_ahead,
    pad_tail,
    simulated_streaming_input,
)

__all__ = [
    "ChunkEncoder",
    "DecodeStream",
    "LOG_EPS",
    "STREAMING_DECODING_METHODS",
    "StreamingSearch",
    "StreamingStats",
    "TAIL_PADDING_FRAMES",
    "decode_one_chunk",
    "encode_utterances",
    "front_end_look_ahead",
    "pad_tail",
    "simulated_streaming_input",
    "stack_states",
    "streaming_decode",
    "unstack_states",
]
