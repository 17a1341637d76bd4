#!/usr/bin/env python3
"""Transcribe audio files with the PyTorch model in pretrained.pt (written by export.py).

Usage, from egs/synth/ASR (from egs/librispeech/ASR, whose zipformer/pretrained.py links
here, the same with data/lang_bpe_500; each folder's recipe_defaults.py holds its dataset's
names):

./zipformer/pretrained.py --checkpoint ./zipformer/exp/pretrained.pt \\
    --tokens data/lang_bpe_128/tokens.txt --decoding-method greedy_search foo.wav bar.flac

./zipformer/pretrained.py --checkpoint ./zipformer/exp/pretrained.pt \\
    --tokens data/lang_bpe_128/tokens.txt --decoding-method modified_beam_search --beam-size 4 \\
    foo.wav

A causal model decodes whole files exactly as chunk-wise streaming would (simulated streaming).

Files may have any sample rate (resampled to 16 kHz, with a note) and several channels (the
first is used, with a note); a file that cannot be read is reported by name and the others are
still transcribed (the exit status is then 1).
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.pretrained import pretrained_parser, run_pretrained  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = pretrained_parser(__doc__.splitlines()[0])
    parser.set_defaults(tokens=f"{RECIPE.LANG_DIR}/tokens.txt")
    return parser


def main() -> None:
    def transcribe(argv):
        return 1 if run_pretrained(get_parser(), argv) else 0  # 1: some file could not be read

    run_main(Path(__file__).name, transcribe)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
