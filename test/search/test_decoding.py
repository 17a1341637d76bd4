"""File-name suffixes and settings keys (icefall's), and decoding-flag checks."""

import pytest
from torch import nn

from icefall_lite.cli.decode import check_decoding_arguments, decoding_suffix, result_key

BASE = dict(
    epoch=30, iter=0, avg=9, use_averaged_model=True, context_size=2, max_sym_per_frame=1,
    beam_size=4, beam=20.0, max_contexts=8, max_states=64, num_paths=200, nbest_scale=0.5,
)  # fmt: skip


@pytest.mark.parametrize(
    "overrides, suffix, key",
    [
        (
            dict(decoding_method="greedy_search"),
            "epoch-30_avg-9_context-2_max-sym-per-frame-1_use-averaged-model",
            "greedy_search",
        ),
        (
            dict(decoding_method="modified_beam_search", use_averaged_model=False),
            "epoch-30_avg-9__modified_beam_search__beam-size-4",
            "beam_size_4",
        ),
        (
            dict(decoding_method="beam_search", iter=4000, avg=2),
            "iter-4000_avg-2__beam_search__beam-size-4_use-averaged-model",
            "beam_size_4",
        ),
        (
            dict(decoding_method="fast_beam_search"),
            "epoch-30_avg-9_beam-20.0_max-contexts-8_max-states-64_use-averaged-model",
            "beam_20.0_max_contexts_8_max_states_64",
        ),
        (
            dict(decoding_method="fast_beam_search_nbest"),
            "epoch-30_avg-9_beam-20.0_max-contexts-8_max-states-64_nbest-scale-0.5"
            "_num-paths-200_use-averaged-model",
            "beam_20.0_max_contexts_8_max_states_64_num_paths_200_nbest_scale_0.5",
        ),
        (
            dict(
                decoding_method="greedy_search",
                causal=True,
                chunk_size="16,32,64,-1",
                left_context_frames="128",
            ),
            "epoch-30_avg-9_chunk-16_left-context-128_context-2_max-sym-per-frame-1"
            "_use-averaged-model",
            "greedy_search",
        ),
        (
            dict(decoding_method="ctc_prefix_beam_search"),
            "epoch-30_avg-9__ctc_prefix_beam_search__beam-size-4_use-averaged-model",
            "beam_size_4",
        ),
    ],
)
def test_suffix_and_key(overrides, suffix, key):
    params = dict(BASE, **overrides)
    assert decoding_suffix(params) == suffix
    assert result_key(params) == key


class _CtcOnly(nn.Module):
    decoder = None
    ctc_output = nn.Identity()


class _TransducerOnly(nn.Module):
    decoder = nn.Identity()
    ctc_output = None


def test_method_must_fit_the_model():
    with pytest.raises(ValueError, match="--use-transducer 1"):
        check_decoding_arguments(dict(BASE, decoding_method="greedy_search"), _CtcOnly())
    with pytest.raises(ValueError, match="--use-ctc 1"):
        check_decoding_arguments(dict(BASE, decoding_method="ctc_greedy_search"), _TransducerOnly())
    with pytest.raises(ValueError, match="--beam-size must be >= 1"):
        check_decoding_arguments(
            dict(BASE, decoding_method="modified_beam_search", beam_size=0), _TransducerOnly()
        )
    check_decoding_arguments(dict(BASE, decoding_method="fast_beam_search"), _TransducerOnly())
