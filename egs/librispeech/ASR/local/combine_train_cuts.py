#!/usr/bin/env python3
"""The 960 h training set for ``train.py --full-libri 1``: one shuffled cut manifest.

Usage:
  ./local/combine_train_cuts.py \
    --inputs data/fbank/librispeech_cuts_train-clean-100.jsonl.gz \
             data/fbank/librispeech_cuts_train-clean-360.jsonl.gz \
             data/fbank/librispeech_cuts_train-other-500.jsonl.gz \
    --output data/fbank/librispeech_cuts_train-all-shuf.jsonl.gz

Shuffles the manifests' lines together (each line is one cut, features included), so the
lazily-read result mixes the three parts from its first batch on. The order depends only on
--seed, so re-running gives the same file. All lines are held in memory: about 2 GB for the
speed-perturbed 960 h (2.8 M cuts), as with icefall's ``shuf``.
"""

import argparse
import gzip
import json
import logging
import random
import sys
from pathlib import Path
from typing import List

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.utils import atomic_open  # noqa: E402


def read_cut_lines(path: Path) -> List[bytes]:
    """Non-empty lines of a ``.jsonl.gz`` cut manifest; exits naming the file if unreadable."""
    if not path.is_file():
        sys.exit(f"combine_train_cuts.py: {path} not found (made by prepare.sh stage 3)")
    try:
        with gzip.open(path, "rb") as f:
            lines = [line if line.endswith(b"\n") else line + b"\n" for line in f if line.strip()]
        if lines:
            json.loads(lines[0])
    except (OSError, EOFError, ValueError) as error:
        sys.exit(f"combine_train_cuts.py: {path} is not a gzipped JSON-lines cut manifest: {error}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=Path, nargs="+", required=True, help="Cut manifests.")
    parser.add_argument("--output", type=Path, required=True, help="The combined manifest.")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the shuffle.")
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [combine] %(message)s", level="INFO")

    lines: List[bytes] = []
    for path in args.inputs:
        part = read_cut_lines(path)
        logging.info(f"{path}: {len(part)} cuts")
        lines.extend(part)
    random.Random(args.seed).shuffle(lines)
    with atomic_open(args.output, "wb") as raw, gzip.open(raw, "wb") as f:
        f.writelines(lines)
    logging.info(f"Wrote {len(lines)} shuffled cuts to {args.output}")


if __name__ == "__main__":
    main()
