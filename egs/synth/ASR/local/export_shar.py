#!/usr/bin/env python3
"""Cut manifests with fbank -> Lhotse Shar shards (written atomically), for train.py --shar-dir.

Usage (prepare.sh's stage 9 runs this with --shar true):
  ./local/export_shar.py --prefix synth --splits train dev
  ./local/export_shar.py --prefix synth --splits train --fields features:lilcom --shard-size 500

Reads data/fbank/<prefix>_cuts_<split>.jsonl.gz, writes data/shar/<prefix>_<split>/
(cuts.NNNNNN.jsonl.gz, features.NNNNNN.tar, shar.json last). Then:
  ./zipformer/train.py --shar-dir data/shar
"""

import argparse
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.data.cuts import load_cuts  # noqa: E402
from icefall_lite.data.shar import shar_split_dir, write_shar  # noqa: E402
from icefall_lite.utils import str2bool  # noqa: E402


def _fields(specs) -> dict:
    fields = {}
    for spec in specs:
        name, _, codec = spec.partition(":")
        if not codec:
            raise SystemExit(f"export_shar.py: --fields wants NAME:CODEC, got {spec!r}")
        fields[name] = codec
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prefix", default="synth", help="Dataset name in the cut files.")
    parser.add_argument("--splits", nargs="+", default=["train", "dev"])
    parser.add_argument("--fbank-dir", type=Path, default=Path("data/fbank"))
    parser.add_argument("--shar-dir", type=Path, default=Path("data/shar"))
    parser.add_argument(
        "--fields",
        nargs="+",
        default=["features:numpy"],
        help="Shar fields as NAME:CODEC: features:numpy (lossless, the default) or "
        "features:lilcom (~4x smaller, values change by up to 1/64), recording:flac|wav.",
    )
    parser.add_argument("--shard-size", type=int, default=1000, help="Cuts per shard.")
    parser.add_argument("--overwrite", type=str2bool, default=False)
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [export_shar] %(message)s", level="INFO")
    fields = _fields(args.fields)
    for split in args.splits:
        cuts = load_cuts(args.fbank_dir, args.prefix, split)
        write_shar(
            cuts,
            shar_split_dir(args.shar_dir, args.prefix, split),
            fields=fields,
            shard_size=args.shard_size,
            overwrite=args.overwrite,
        )


if __name__ == "__main__":
    main()
