"""Which search a decoding method name means, and running it on encoder output.

The command-line side of decoding (flags, checks against the model, result file names, the loop
over test sets) is in :mod:`icefall_lite.cli`.
"""

from typing import Any, List, Mapping

import torch
from torch import nn

from icefall_lite.search.beam_search import beam_search
from icefall_lite.search.ctc import ctc_greedy_search, ctc_prefix_beam_search
from icefall_lite.search.fast_beam_search import fast_beam_search, fast_beam_search_nbest
from icefall_lite.search.greedy import greedy_search
from icefall_lite.search.hypothesis import DecodingResult
from icefall_lite.search.modified_beam_search import modified_beam_search

__all__ = ["CTC_METHODS", "DECODING_METHODS", "TRANSDUCER_METHODS", "search"]

TRANSDUCER_METHODS = (
    "greedy_search",
    "beam_search",
    "modified_beam_search",
    "fast_beam_search",
    "fast_beam_search_nbest",
)
CTC_METHODS = ("ctc_greedy_search", "ctc_prefix_beam_search")
DECODING_METHODS = TRANSDUCER_METHODS + CTC_METHODS


@torch.no_grad()
def search(
    params: Mapping[str, Any],
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
) -> List[DecodingResult]:
    """Run ``params["decoding_method"]`` on encoder output (N, T, C) with lengths (N,)."""
    method = params["decoding_method"]
    if method == "greedy_search":
        return greedy_search(model, encoder_out, encoder_out_lens, params["max_sym_per_frame"])
    if method == "beam_search":
        return beam_search(model, encoder_out, encoder_out_lens, beam=params["beam_size"])
    if method == "modified_beam_search":
        return modified_beam_search(model, encoder_out, encoder_out_lens, beam=params["beam_size"])
    fast_beam = dict(
        beam=params["beam"], max_states=params["max_states"], max_contexts=params["max_contexts"]
    )
    if method == "fast_beam_search":
        return fast_beam_search(model, encoder_out, encoder_out_lens, **fast_beam)
    if method == "fast_beam_search_nbest":
        return fast_beam_search_nbest(
            model,
            encoder_out,
            encoder_out_lens,
            num_paths=params["num_paths"],
            nbest_scale=params["nbest_scale"],
            **fast_beam,
        )
    ctc_log_probs = model.ctc_output(encoder_out)
    if method == "ctc_greedy_search":
        return ctc_greedy_search(ctc_log_probs, encoder_out_lens)
    if method == "ctc_prefix_beam_search":
        return ctc_prefix_beam_search(ctc_log_probs, encoder_out_lens, beam=params["beam_size"])
    raise ValueError(f"--decoding-method {method}: expected one of {DECODING_METHODS}")
