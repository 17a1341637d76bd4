#!/usr/bin/env python3
"""Write the training data's per-mel-bin mean and variance, the starting point of streaming
normalisation (decode.py / streaming_decode.py --stream-norm 1).

Usage, from egs/synth/ASR (egs/librispeech/ASR/lstm_transducer/dump_mel_stats.py links here):

./lstm_transducer/dump_mel_stats.py                    # every training cut
./lstm_transducer/dump_mel_stats.py --max-cuts 1500 --out lstm_transducer/exp/mel_stats.pt

Reads the fbank features of the training splits (recipe_defaults.py) from --manifest-dir and
writes --out ({"mean", "var", "num_frames"}; a temporary file renamed when complete).
"""

import argparse
import logging
import sys
from itertools import islice
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

import torch  # noqa: E402

from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402
from icefall_lite.data import cuts_filename  # noqa: E402
from icefall_lite.errors import UsageError  # noqa: E402
from icefall_lite.streaming import mel_stats, save_mel_stats  # noqa: E402
from icefall_lite.utils import AttributeDict  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/fbank"))
    parser.add_argument("--cuts-prefix", type=str, default=RECIPE.DATASET)
    parser.add_argument("--out", type=Path, default=Path(RECIPE.MEL_STATS))
    parser.add_argument(
        "--max-cuts",
        type=int,
        default=0,
        help="Read at most about this many cuts, evenly spread over the training data (every "
        "k-th cut, so that every voice and room is sampled); 0: all.",
    )
    return parser


def main() -> None:
    def run(argv):
        from lhotse import load_manifest_lazy

        args = get_parser().parse_args(argv)
        logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
        if args.max_cuts < 0:
            raise UsageError(f"--max-cuts must be >= 0, got {args.max_cuts}")
        features = []
        for split in RECIPE.train_splits(AttributeDict()):
            filename = cuts_filename(args.manifest_dir, args.cuts_prefix, split)
            if not filename.is_file():
                raise UsageError(
                    f"--manifest-dir {args.manifest_dir}: {filename.name} not found (made by "
                    "prepare.sh's fbank stage)"
                )
            features.append(load_manifest_lazy(filename))
        total = sum(len(cutset) for cutset in features)
        stride = max(1, -(-total // args.max_cuts)) if args.max_cuts > 0 else 1
        cuts = islice((cut for cutset in features for cut in cutset), 0, None, stride)
        mean, var, num_frames = mel_stats(torch.from_numpy(cut.load_features()) for cut in cuts)
        save_mel_stats(args.out, mean, var, num_frames)
        logging.info(f"Wrote {args.out}: {num_frames} frames, {mean.numel()} bins")

    run_main(Path(__file__).name, run)


if __name__ == "__main__":
    main()
