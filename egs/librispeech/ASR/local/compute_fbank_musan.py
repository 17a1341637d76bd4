#!/usr/bin/env python3
"""MUSAN noise cuts for on-the-fly mixing: ``data/fbank/musan_cuts.jsonl.gz``.

Usage:
  ./local/compute_fbank_musan.py --nj 2

Combines ``data/manifests/musan_recordings_{music,speech,noise}.jsonl.gz`` (stage 2), cuts them
into 10 s windows (pieces under 5 s dropped) and computes fbank, as icefall does.
"""

import argparse
import logging
import sys
from pathlib import Path

import torch
from lhotse import RecordingSet

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.data.features import noise_recordings_to_fbank  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    parser.add_argument("--fbank-dir", type=Path, default=Path("data/fbank"))
    parser.add_argument("--nj", type=int, default=2)
    parser.add_argument("--backend", default="auto", choices=["auto", "kaldifeat", "lhotse"])
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [fbank] %(message)s", level="INFO")
    torch.set_num_threads(1)
    output = args.fbank_dir / "musan_cuts.jsonl.gz"
    if output.is_file():
        logging.info(f"{output} exists, skipping")
        return
    recordings = []
    for part in ("music", "speech", "noise"):
        path = args.manifest_dir / f"musan_recordings_{part}.jsonl.gz"
        if not path.is_file():
            sys.exit(f"compute_fbank_musan.py: {path} not found (made by prepare.sh stage 2)")
        recordings.extend(RecordingSet.from_file(path))
    noise_recordings_to_fbank(
        RecordingSet.from_recordings(recordings), output, num_jobs=args.nj, backend=args.backend
    )


if __name__ == "__main__":
    main()
