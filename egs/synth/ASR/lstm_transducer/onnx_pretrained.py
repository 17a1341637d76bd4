#!/usr/bin/env python3
"""Transcribe audio files with the ONNX LSTM transducer (export-onnx.py) through onnxruntime,
chunk by chunk.

Usage, from egs/synth/ASR (egs/librispeech/ASR/lstm_transducer/onnx_pretrained.py links here):

./lstm_transducer/onnx_pretrained.py \
    --encoder-model-filename ./lstm_transducer/exp/encoder-epoch-5-avg-2-chunk-8.onnx \
    --decoder-model-filename ./lstm_transducer/exp/decoder-epoch-5-avg-2.onnx \
    --joiner-model-filename ./lstm_transducer/exp/joiner-epoch-5-avg-2.onnx \
    --tokens ./lstm_transducer/exp/tokens.txt foo.wav bar.wav

.int8.onnx files work the same way; --stream-norm 1 normalises with running statistics. Files
may have any sample rate and several channels (the first is used); a file that cannot be read
is reported by name and the others are still transcribed (exit status 1).
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.pretrained import onnx_pretrained_parser, run_onnx_pretrained  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = onnx_pretrained_parser(__doc__.splitlines()[0])
    parser.set_defaults(tokens=f"{RECIPE.LANG_DIR}/tokens.txt", stream_norm_stats=RECIPE.MEL_STATS)
    return parser


def main() -> None:
    def transcribe(argv):
        return 1 if run_onnx_pretrained(get_parser(), argv) else 0  # 1: some file could not be read

    run_main(Path(__file__).name, transcribe)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
