#!/usr/bin/env python3
"""Export a trained LSTM transducer to ONNX: streaming encoder, recurrent decoder, joiner.

Usage, from egs/synth/ASR (egs/librispeech/ASR/lstm_transducer/export-onnx.py links here):

./lstm_transducer/export-onnx.py --epoch 5 --avg 2 --chunk-size 8

./lstm_transducer/onnx_pretrained.py \\
    --encoder-model-filename lstm_transducer/exp/encoder-epoch-5-avg-2-chunk-8.onnx \\
    --decoder-model-filename lstm_transducer/exp/decoder-epoch-5-avg-2.onnx \\
    --joiner-model-filename lstm_transducer/exp/joiner-epoch-5-avg-2.onnx foo.wav

Writes encoder-<tag>-chunk-<C>.onnx (one chunk of --chunk-size encoder frames, LSTM states in
and out), decoder-<tag>.onnx (one token and the prediction network's state in, output and new
state out), joiner-<tag>.onnx, their .int8.onnx versions and tokens.txt
(icefall_lite/export/lstm_onnx.py).
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.export import get_export_parser, run_export_onnx  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402
from icefall_lite.models import add_lstm_transducer_model_arguments  # noqa: E402
from icefall_lite.models.lstm_transducer import add_lstm_chunk_arguments  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = get_export_parser(
        __doc__.splitlines()[0], onnx=True, add_model_flags=add_lstm_transducer_model_arguments
    )
    add_lstm_chunk_arguments(parser, RECIPE.CHUNK_SIZE)
    parser.set_defaults(exp_dir=RECIPE.EXP_DIR, tokens=f"{RECIPE.LANG_DIR}/tokens.txt")
    return parser


def main() -> None:
    def export(argv):
        run_export_onnx(get_parser(), argv, get_params())

    run_main(Path(__file__).name, export)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
