"""Which search a decoding method name means, and running it on encoder output.

The command-line side of decoding (flags, checks against the model, result file names, the loop
over test sets) is in :mod:`icefall_lite.cli`.
"""

from typing import Any, List, Mapping, Optional

import torch
from torch import nn

from icefall_lite.search.beam_search import beam_search
from icefall_lite.search.ctc import ctc_greedy_search, ctc_prefix_beam_search
from icefall_lite.search.fast_beam_search import fast_beam_search, fast_beam_search_nbest
from icefall_lite.search.greedy import greedy_search
from icefall_lite.search.hypothesis import DecodingResult
from icefall_lite.search.lm_fusion import LmFusion
from icefall_lite.search.modified_beam_search import modified_beam_search

__all__ = ["CTC_METHODS", "DECODING_METHODS", "LM_METHODS", "TRANSDUCER_METHODS", "search"]

TRANSDUCER_METHODS = (
    "greedy_search",
    "beam_search",
    "modified_beam_search",
    "fast_beam_search",
    "fast_beam_search_nbest",
)
CTC_METHODS = ("ctc_greedy_search", "ctc_prefix_beam_search")
DECODING_METHODS = TRANSDUCER_METHODS + CTC_METHODS


# Methods that can fuse a language model (--lm-type ngram).
LM_METHODS = ("modified_beam_search", "ctc_prefix_beam_search")


@torch.no_grad()
def search(
    params: Mapping[str, Any],
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    fusion: Optional[LmFusion] = None,
) -> List[DecodingResult]:
    """Run ``params["decoding_method"]`` on encoder output (N, T, C) with lengths (N,);
    ``fusion`` (a language model with its weights) applies to the methods of ``LM_METHODS``."""
    method = params["decoding_method"]
    if fusion is not None and method not in LM_METHODS:
        raise ValueError(f"--decoding-method {method} cannot use an LM; use one of {LM_METHODS}")
    if method == "greedy_search":
        return greedy_search(model, encoder_out, encoder_out_lens, params["max_sym_per_frame"])
    if method == "beam_search":
        return beam_search(model, encoder_out, encoder_out_lens, beam=params["beam_size"])
    if method == "modified_beam_search":
        return modified_beam_search(
            model, encoder_out, encoder_out_lens, beam=params["beam_size"], fusion=fusion
        )
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
        return ctc_prefix_beam_search(
            ctc_log_probs, encoder_out_lens, beam=params["beam_size"], fusion=fusion
        )
    raise ValueError(f"--decoding-method {method}: expected one of {DECODING_METHODS}")
