#!/usr/bin/env python3
"""Write the model's transcript of each file of a list of sound files, one text file per sound
file (the reference scripts' prediction dump).

Usage, from egs/synth/ASR (egs/librispeech/ASR/lstm_transducer/dump_predictions.py links here):

./lstm_transducer/export.py --epoch 5 --avg 2
ls /path/to/wavs/*.wav > wavs.txt
./lstm_transducer/dump_predictions.py --checkpoint lstm_transducer/exp/pretrained.pt \\
    --wav-list wavs.txt --out-dir lstm_transducer/exp/predictions --decoding-method beam_search

Writes <out-dir>/<file stem>.txt (the transcript, one line) for every readable file and
<out-dir>/predictions.tsv (file, transcript); an unreadable file is reported by name and the
others are still transcribed (exit status 1). --stream-norm 1 normalises as a stream would.
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.pretrained import (  # noqa: E402
    dump_predictions_parser,
    run_dump_predictions,
)
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = dump_predictions_parser(__doc__.splitlines()[0])
    parser.set_defaults(tokens=f"{RECIPE.LANG_DIR}/tokens.txt", stream_norm_stats=RECIPE.MEL_STATS)
    return parser


def main() -> None:
    def dump(argv):
        return 1 if run_dump_predictions(get_parser(), argv) else 0  # 1: a file was unreadable

    run_main(Path(__file__).name, dump)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
