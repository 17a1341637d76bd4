#!/usr/bin/env python3
"""Transcribe audio files with the TorchScript LSTM transducer (export.py --jit 1), chunk by
chunk; needs only torch.

Usage, from egs/synth/ASR (egs/librispeech/ASR/lstm_transducer/jit_pretrained.py links here):

./lstm_transducer/jit_pretrained.py \
    --nn-model-filename ./lstm_transducer/exp/jit_script_chunk_8_left_0.pt \
    --tokens data/lang_bpe_128/tokens.txt --decoding-method modified_beam_search foo.wav

Features are normalised over each whole file, or with --stream-norm 1 (and
--stream-norm-stats) by running statistics as a stream would. Files may have any sample rate
and several channels (the first is used); a file that cannot be read is reported by name and
the others are still transcribed (exit status 1).
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.pretrained import jit_pretrained_parser, run_jit_pretrained  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = jit_pretrained_parser(__doc__.splitlines()[0])
    parser.set_defaults(tokens=f"{RECIPE.LANG_DIR}/tokens.txt", stream_norm_stats=RECIPE.MEL_STATS)
    return parser


def main() -> None:
    def transcribe(argv):
        return 1 if run_jit_pretrained(get_parser(), argv) else 0  # 1: some file could not be read

    run_main(Path(__file__).name, transcribe)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
