#!/usr/bin/env python3
"""Decode a dataset's test sets with a trained Jasper/QuartzNet CTC model.

One script for every dataset (egs/librispeech/ASR/conv_ctc/decode.py is a relative symlink to
egs/synth/ASR/conv_ctc/decode.py): the test sets, cut-file prefix and BPE model are those of
recipe_defaults.py in the folder it is run from. Usage, from egs/synth/ASR:

(1) greedy (best path)
./conv_ctc/decode.py --epoch 6 --avg 2 --decoding-method ctc_greedy_search

(2) prefix beam search
./conv_ctc/decode.py --epoch 6 --avg 2 --decoding-method ctc_prefix_beam_search --beam-size 4

(3) prefix beam search with shallow fusion of the token 5-gram LM (prepare.sh's LM stage,
    built from the training transcripts only)
./conv_ctc/decode.py --epoch 6 --avg 2 --decoding-method ctc_prefix_beam_search --beam-size 4 \\
    --lm-type ngram --lm-path data/lm/lang_bpe_128_5gram.arpa --lm-scale 0.5 \\
    --word-insertion-bonus 2.5   # scale and bonus tuned on dev (RESULTS.md)

Checkpoints: --epoch/--iter pick the last checkpoint, --avg how many to average (as the
zipformer recipe). The model is built from the params stored in the checkpoint.

Results go to <exp-dir>/<decoding-method>/: recogs-<test-set>-<suffix>.txt,
errs-<test-set>-<suffix>.txt and wer-summary-<test-set>-<suffix>.txt (the suffix names the LM
and its weights when one is fused); WER and decode RTF of each test set are logged at the end.
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.decode import default_lm_path, get_decode_parser, run_decode  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402
from icefall_lite.models.conv_ctc import add_conv_ctc_arguments  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    description = f"Decode the {RECIPE.DATASET} test sets ({', '.join(RECIPE.TEST_SETS)})."
    parser = get_decode_parser(
        RECIPE.TEST_SETS, description=description, add_model_flags=add_conv_ctc_arguments
    )
    parser.set_defaults(
        exp_dir="conv_ctc/exp",
        bpe_model=f"{RECIPE.LANG_DIR}/bpe.model",
        decoding_method="ctc_greedy_search",
        lm_path=default_lm_path(RECIPE.LANG_DIR),
    )
    return parser


def main() -> None:
    def decode(argv):
        run_decode(get_parser(), argv, RECIPE.DATASET, defaults=get_params())

    # Bad flags, files or cuts: one line (a traceback with --debug); see icefall_lite/cli/errors.py
    run_main(Path(__file__).name, decode)


if __name__ == "__main__":
    main()
