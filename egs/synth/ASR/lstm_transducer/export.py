#!/usr/bin/env python3
"""Export a trained LSTM transducer to pretrained.pt, TorchScript and ONNX.

Usage, from egs/synth/ASR (egs/librispeech/ASR/lstm_transducer/export.py links here):

./lstm_transducer/export.py --epoch 5 --avg 2 --jit 1
./lstm_transducer/export-onnx.py --epoch 5 --avg 2 --chunk-size 8

Writes <exp-dir>/pretrained.pt (weights + params, for ./lstm_transducer/pretrained.py) and, with
--jit 1, the chunk-wise model jit_script_chunk_<C>_left_0.pt (--chunk-size C encoder frames; for
./lstm_transducer/jit_pretrained.py). The LSTM is causal, so the streaming export serves whole
files too. Checkpoints are chosen as in decode.py (or --use-ema 1: the EMA weights).
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.export import get_export_parser, run_export  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402
from icefall_lite.models import add_lstm_transducer_model_arguments  # noqa: E402
from icefall_lite.models.lstm_transducer import add_lstm_chunk_arguments  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = get_export_parser(
        __doc__.splitlines()[0], onnx=False, add_model_flags=add_lstm_transducer_model_arguments
    )
    add_lstm_chunk_arguments(parser, RECIPE.CHUNK_SIZE)
    parser.set_defaults(exp_dir=RECIPE.EXP_DIR, tokens=f"{RECIPE.LANG_DIR}/tokens.txt")
    return parser


def main() -> None:
    def export(argv):
        run_export(get_parser(), argv, get_params())

    run_main(Path(__file__).name, export)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
