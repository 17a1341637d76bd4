#!/usr/bin/env python3
"""Transcribe audio files with the PyTorch LSTM transducer in pretrained.pt (export.py).

Usage, from egs/synth/ASR (egs/librispeech/ASR/lstm_transducer/pretrained.py links here):

./lstm_transducer/pretrained.py --checkpoint ./lstm_transducer/exp/pretrained.pt \
    --tokens data/lang_bpe_128/tokens.txt --decoding-method greedy_search foo.wav bar.flac

./lstm_transducer/pretrained.py --checkpoint ./lstm_transducer/exp/pretrained.pt \
    --tokens data/lang_bpe_128/tokens.txt --decoding-method beam_search --beam-size 4 \
    --stream-norm 1 --stream-norm-stats lstm_transducer/exp/mel_stats.pt foo.wav

Features are normalised over each whole file (as in training), or with --stream-norm 1 by
running per-bin statistics frame by frame (as streaming does). Files may have any sample rate
(resampled to 16 kHz, with a note) and several channels (the first is used, with a note); a file
that cannot be read is reported by name and the others are still transcribed (exit status 1).
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
    parser.set_defaults(tokens=f"{RECIPE.LANG_DIR}/tokens.txt", stream_norm_stats=RECIPE.MEL_STATS)
    return parser


def main() -> None:
    def transcribe(argv):
        return 1 if run_pretrained(get_parser(), argv) else 0  # 1: some file could not be read

    run_main(Path(__file__).name, transcribe)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
