#!/usr/bin/env python3
"""Export a trained Zipformer transducer to ONNX for onnxruntime and sherpa-onnx.

Usage, from egs/synth/ASR (from egs/librispeech/ASR, whose zipformer/export-onnx.py links here,
the same with data/lang_bpe_500; each folder's recipe_defaults.py holds its dataset's names):

./zipformer/export-onnx.py --exp-dir ./zipformer/exp --tokens data/lang_bpe_128/tokens.txt \\
    --epoch 30 --avg 9

For a model trained with --causal 1 the encoder is the streaming (chunk-wise) one:
./zipformer/export-onnx.py --exp-dir ./zipformer/exp --tokens data/lang_bpe_128/tokens.txt \\
    --epoch 30 --avg 9 --chunk-size 16 --left-context-frames 128

Writes encoder-/decoder-/joiner-epoch-30-avg-9[-chunk-16-left-128].onnx, their .int8.onnx
versions and tokens.txt into <exp-dir>, with the metadata sherpa-onnx reads:

sherpa-onnx-offline --tokens=zipformer/exp/tokens.txt \\
    --encoder=zipformer/exp/encoder-epoch-30-avg-9.onnx \\
    --decoder=zipformer/exp/decoder-epoch-30-avg-9.onnx \\
    --joiner=zipformer/exp/joiner-epoch-30-avg-9.onnx foo.wav

Checkpoints are chosen as in decode.py (--epoch/--iter/--avg/--use-averaged-model) and the
architecture is read from them.
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.export import get_export_parser, run_export_onnx  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = get_export_parser(__doc__.splitlines()[0], onnx=True)
    parser.set_defaults(exp_dir="zipformer/exp", tokens=f"{RECIPE.LANG_DIR}/tokens.txt")
    return parser


def main() -> None:
    def export(argv):
        run_export_onnx(get_parser(), argv, get_params())

    run_main(Path(__file__).name, export)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
