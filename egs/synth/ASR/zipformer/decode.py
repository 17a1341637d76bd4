#!/usr/bin/env python3
"""Decode a dataset's test sets with a trained Zipformer transducer.

One script for every dataset (egs/librispeech/ASR/zipformer/decode.py is a relative symlink to
egs/synth/ASR/zipformer/decode.py): the test sets, cut-file prefix and BPE model are those of
recipe_defaults.py in the folder it is run from. Usage, from egs/synth/ASR or
egs/librispeech/ASR:

(1) greedy search
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method greedy_search

(2) beam search (Graves 2012, as in ESPnet)
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method beam_search --beam-size 4

(3) modified beam search (one symbol per frame, batched)
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method modified_beam_search --beam-size 4

(4) fast beam search, one-best and n-best
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method fast_beam_search \\
    --beam 20.0 --max-contexts 8 --max-states 64
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method fast_beam_search_nbest \\
    --beam 20.0 --max-contexts 8 --max-states 64 --num-paths 200 --nbest-scale 0.5

(5) CTC head (models trained with --use-ctc 1)
./zipformer/decode.py --epoch 30 --avg 9 --decoding-method ctc_prefix_beam_search --beam-size 4

(6) modified beam search with shallow fusion of the token n-gram LM (prepare.sh's LM stage)
./zipformer/decode.py --epoch 30 --avg 9 --decoding-method modified_beam_search --beam-size 4 \\
    --lm-type ngram --lm-path data/lm/lang_bpe_500_5gram.arpa --lm-scale 0.3

Checkpoints: --epoch/--iter pick the last checkpoint, --avg how many to average;
--use-averaged-model 1 (default) averages exactly over the training window from the running
averages stored in epoch-(epoch-avg).pt and epoch-<epoch>.pt. The model is built from the
params stored in the checkpoint: model flags are not needed (if given, they must agree).

Results go to <exp-dir>/<decoding-method>/: recogs-<test-set>-<suffix>.txt,
errs-<test-set>-<suffix>.txt and wer-summary-<test-set>-<suffix>.txt; WER and decode RTF of each
test set are logged at the end.
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.decode import default_lm_path, get_decode_parser, run_decode  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    description = f"Decode the {RECIPE.DATASET} test sets ({', '.join(RECIPE.TEST_SETS)})."
    parser = get_decode_parser(RECIPE.TEST_SETS, description=description)
    parser.set_defaults(
        exp_dir="zipformer/exp",
        bpe_model=f"{RECIPE.LANG_DIR}/bpe.model",
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
