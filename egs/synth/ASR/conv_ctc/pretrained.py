#!/usr/bin/env python3
"""Transcribe audio files with the Jasper/QuartzNet CTC model in pretrained.pt (export.py).

Usage, from egs/synth/ASR:

./conv_ctc/pretrained.py --checkpoint ./conv_ctc/exp/pretrained.pt \\
    --tokens data/lang_bpe_128/tokens.txt --decoding-method ctc_greedy_search foo.wav bar.flac

./conv_ctc/pretrained.py --checkpoint ./conv_ctc/exp/pretrained.pt \\
    --tokens data/lang_bpe_128/tokens.txt --decoding-method ctc_prefix_beam_search \\
    --lm-type ngram --lm-path data/lm/lang_bpe_128_5gram.arpa --lm-scale 0.5 foo.wav

Files may have any sample rate (resampled to 16 kHz) and several channels (the first is used);
a file that cannot be read is reported by name and the others are still transcribed (the exit
status is then 1).
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.decode import default_lm_path  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.pretrained import pretrained_parser, run_pretrained  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = pretrained_parser(__doc__.splitlines()[0])
    parser.set_defaults(
        tokens=f"{RECIPE.LANG_DIR}/tokens.txt",
        decoding_method="ctc_greedy_search",
        lm_path=default_lm_path(RECIPE.LANG_DIR),
    )
    return parser


def main() -> None:
    def transcribe(argv):
        return 1 if run_pretrained(get_parser(), argv) else 0  # 1: some file could not be read

    run_main(Path(__file__).name, transcribe)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
