#!/usr/bin/env python3
"""80-dim fbank for LibriSpeech parts, with 0.9/1.1 speed perturbation on the train parts.

Usage:
  ./local/compute_fbank_librispeech.py --parts train-clean-100 dev-clean test-clean --nj 2

Reads ``data/manifests/librispeech_{recordings,supervisions}_<part>.jsonl.gz`` (stage 1) and
writes ``data/fbank/librispeech_cuts_<part>.jsonl.gz``; kaldifeat when installed, else lhotse.
"""

import argparse
import logging
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.data.features import fbank_backend_name, manifests_to_fbank  # noqa: E402
from icefall_lite.utils import str2bool  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", required=True, help="LibriSpeech parts.")
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    parser.add_argument("--fbank-dir", type=Path, default=Path("data/fbank"))
    parser.add_argument("--nj", type=int, default=2)
    parser.add_argument(
        "--perturb-speed", type=str2bool, default=True, help="0.9/1.1 copies of train-* parts."
    )
    parser.add_argument("--backend", default="auto", choices=["auto", "kaldifeat", "lhotse"])
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [fbank] %(message)s", level="INFO")
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    logging.info(f"fbank backend: {fbank_backend_name(args.backend)}")
    for part in args.parts:
        try:
            manifests_to_fbank(
                args.manifest_dir,
                args.fbank_dir,
                "librispeech",
                part,
                perturb_speed=args.perturb_speed and part.startswith("train"),
                num_jobs=args.nj,
                backend=args.backend,
            )
        except FileNotFoundError as error:
            sys.exit(f"compute_fbank_librispeech.py: {error} (stage 1)")


if __name__ == "__main__":
    main()
