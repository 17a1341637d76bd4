"""LibriSpeech decode.py: same shared decode main, its own test sets and cut-file prefix."""

import pytest
import torch
from test_decode_synth import (
    NUM_CUTS,
    common_args,
    known_wer,
    load_recipe_script,
    make_recipe_dir,
)


@pytest.fixture(scope="module")
def librispeech_dir(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("librispeech")
    splits = ["test-clean", "test-other"]
    return make_recipe_dir(root, "librispeech", splits, use_ctc=False, known_answer=True)


def test_decodes_test_clean_and_test_other_by_default(librispeech_dir):
    script = load_recipe_script("librispeech")
    assert script.get_parser().parse_args([]).test_sets == "test-clean,test-other"
    summary = script.run_decode(
        script.get_parser(),
        common_args(librispeech_dir, "--decoding-method", "fast_beam_search", "--beam", "4"),
        "librispeech",
        script.get_params(),
    )
    assert list(summary) == ["test-clean", "test-other"]
    res_dir = librispeech_dir["exp_dir"] / "fast_beam_search"
    suffix = "epoch-2_avg-1_beam-4.0_max-contexts-8_max-states-64_use-averaged-model"
    for name, (wer, stats) in summary.items():
        assert stats.num_cuts == NUM_CUTS
        assert wer == pytest.approx(known_wer(ctc=False), abs=0.01)  # the constructed answer
        assert (res_dir / f"wer-summary-{name}-{suffix}.txt").is_file()


def test_ctc_method_on_a_model_without_ctc_head_is_rejected(librispeech_dir):
    script = load_recipe_script("librispeech")
    with pytest.raises(ValueError, match="--use-ctc 1"):
        script.run_decode(
            script.get_parser(),
            common_args(librispeech_dir, "--decoding-method", "ctc_greedy_search"),
            "librispeech",
            script.get_params(),
        )
