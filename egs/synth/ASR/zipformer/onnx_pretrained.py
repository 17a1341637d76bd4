#!/usr/bin/env python3
"""Transcribe audio files with ONNX models (export-onnx.py) through onnxruntime.

Usage, from egs/synth/ASR (from egs/librispeech/ASR, whose zipformer/onnx_pretrained.py links
here, the same with data/lang_bpe_500; each folder's recipe_defaults.py holds its dataset's
names):

./zipformer/onnx_pretrained.py \\
    --encoder-model-filename ./zipformer/exp/encoder-epoch-30-avg-9.onnx \\
    --decoder-model-filename ./zipformer/exp/decoder-epoch-30-avg-9.onnx \\
    --joiner-model-filename ./zipformer/exp/joiner-epoch-30-avg-9.onnx \\
    --tokens ./zipformer/exp/tokens.txt foo.wav bar.wav

A streaming encoder (encoder-epoch-30-avg-9-chunk-16-left-128.onnx) is run chunk by chunk;
.int8.onnx files work the same way.

Files may have any sample rate (resampled to 16 kHz, with a note) and several channels (the
first is used, with a note); a file that cannot be read is reported by name and the others are
still transcribed (the exit status is then 1).
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
    parser.set_defaults(tokens=f"{RECIPE.LANG_DIR}/tokens.txt")
    return parser


def main() -> None:
    def transcribe(argv):
        return 1 if run_onnx_pretrained(get_parser(), argv) else 0  # 1: some file could not be read

    run_main(Path(__file__).name, transcribe)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
