"""Search algorithms shared by every recipe.

Transducer searches take a model with ``decoder`` and ``joiner`` plus encoder output
``(N, T, C)`` and lengths ``(N,)``; CTC searches take log-probabilities ``(N, T, V)``. All return
one :class:`DecodingResult` (tokens, per-token encoder-frame timestamps, score) per utterance, in
input order. Each transducer search also offers a per-chunk function over per-stream states, which
streaming decoding reuses.
"""

from icefall_lite.search.beam_search import beam_search
from icefall_lite.search.ctc import ctc_greedy_search, ctc_prefix_beam_search
from icefall_lite.search.fast_beam_search import (
    FastBeamStream,
    best_path,
    fast_beam_search,
    fast_beam_search_chunk,
    fast_beam_search_nbest,
    fast_beam_search_step,
    init_fast_beam_streams,
)
from icefall_lite.search.greedy import (
    GreedyStream,
    greedy_search,
    greedy_search_chunk,
    init_greedy_streams,
)
from icefall_lite.search.hypothesis import DecodingResult, Hypothesis, HypothesisList
from icefall_lite.search.modified_beam_search import (
    BeamStream,
    init_beam_streams,
    modified_beam_search,
    modified_beam_search_chunk,
    modified_beam_search_step,
)

__all__ = [
    "BeamStream",
    "DecodingResult",
    "FastBeamStream",
    "GreedyStream",
    "Hypothesis",
    "HypothesisList",
    "beam_search",
    "best_path",
    "ctc_greedy_search",
    "ctc_prefix_beam_search",
    "fast_beam_search",
    "fast_beam_search_chunk",
    "fast_beam_search_nbest",
    "fast_beam_search_step",
    "greedy_search",
    "greedy_search_chunk",
    "init_beam_streams",
    "init_fast_beam_streams",
    "init_greedy_streams",
    "modified_beam_search",
    "modified_beam_search_chunk",
    "modified_beam_search_step",
]
