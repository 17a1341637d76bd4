#!/usr/bin/env python3
"""Decode a dataset's test sets with a trained LSTM transducer.

One script for every dataset (egs/librispeech/ASR/lstm_transducer/decode.py is a relative
symlink to this file): test sets, cut-file prefix and BPE model come from recipe_defaults.py in
the folder it is run from. Usage, from egs/synth/ASR:

(1) greedy search, (2) beam search (Graves 2012), (3) modified beam search
./lstm_transducer/decode.py --epoch 5 --avg 1 --use-averaged-model 0 --use-ema 1 \\
    --decoding-method greedy_search
./lstm_transducer/decode.py --epoch 5 --avg 1 --use-averaged-model 0 --use-ema 1 \\
    --decoding-method beam_search --beam-size 4
./lstm_transducer/decode.py --epoch 5 --avg 2 --decoding-method modified_beam_search

(4) simulated streaming with streaming normalisation (running per-bin statistics from
    ./lstm_transducer/dump_mel_stats.py), as ./lstm_transducer/streaming_decode.py computes it
./lstm_transducer/decode.py --epoch 5 --avg 2 --chunk-size 8 --stream-norm 1

The prediction network is recurrent, so fast_beam_search is not available. Checkpoints:
--epoch/--iter/--avg/--use-averaged-model as in icefall, or --use-ema 1 for the EMA weights of
the --epoch/--iter checkpoint. The model is built from the checkpoint's params. Results go to
<exp-dir>/<decoding-method>/ (recogs-*, errs-*, wer-summary-*).
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.decode import get_decode_parser, run_decode  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402
from icefall_lite.models import add_lstm_transducer_model_arguments  # noqa: E402
from icefall_lite.models.lstm_transducer import add_lstm_chunk_arguments  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    description = f"Decode the {RECIPE.DATASET} test sets ({', '.join(RECIPE.TEST_SETS)})."
    parser = get_decode_parser(RECIPE.TEST_SETS, description, add_lstm_transducer_model_arguments)
    add_lstm_chunk_arguments(parser)
    parser.set_defaults(
        exp_dir=RECIPE.EXP_DIR,
        bpe_model=f"{RECIPE.LANG_DIR}/bpe.model",
        stream_norm_stats=RECIPE.MEL_STATS,
    )
    return parser


def main() -> None:
    def decode(argv):
        run_decode(get_parser(), argv, RECIPE.DATASET, defaults=get_params())

    run_main(Path(__file__).name, decode)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
