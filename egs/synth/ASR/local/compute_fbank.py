#!/usr/bin/env python3
"""80-dim fbank for the synth splits and the noise set (kaldifeat if installed, else lhotse).

Usage:
  ./local/compute_fbank.py --splits train dev test-synth test-human --nj 2 --perturb-speed false
  ./local/compute_fbank.py --noise true

Reads ``data/manifests/synth_{recordings,supervisions}_<split>.jsonl.gz``, writes
``data/fbank/synth_cuts_<split>.jsonl.gz`` (features in ``data/fbank/synth_feats_<split>``);
``--perturb-speed true`` adds 0.9/1.1 copies of train. ``--noise true`` writes
``data/fbank/synth_cuts_noise.jsonl.gz`` from ``synth_recordings_noise.jsonl.gz``.
"""

import argparse
import logging
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.data.features import (  # noqa: E402
    fbank_backend_name,
    manifests_to_fbank,
    noise_recordings_to_fbank,
)
from icefall_lite.utils import str2bool  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--splits", nargs="*", default=[], help="Splits to process.")
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    parser.add_argument("--fbank-dir", type=Path, default=Path("data/fbank"))
    parser.add_argument("--nj", type=int, default=2, help="Parallel fbank jobs.")
    parser.add_argument("--perturb-speed", type=str2bool, default=False, help="0.9/1.1 on train.")
    parser.add_argument("--noise", type=str2bool, default=False, help="Make the noise cuts.")
    parser.add_argument(
        "--backend", default="auto", choices=["auto", "kaldifeat", "lhotse"], help="fbank code."
    )
    args = parser.parse_args()
    logging.basicConfig(
        format="%(asctime)s %(levelname)s [compute_fbank] %(message)s", level="INFO"
    )
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    logging.info(f"fbank backend: {fbank_backend_name(args.backend)}")
    for split in args.splits:
        manifests_to_fbank(
            args.manifest_dir,
            args.fbank_dir,
            "synth",
            split,
            perturb_speed=args.perturb_speed and split == "train",
            num_jobs=args.nj,
            backend=args.backend,
        )
    if args.noise:
        from lhotse import RecordingSet

        source = args.manifest_dir / "synth_recordings_noise.jsonl.gz"
        if not source.is_file():
            sys.exit(f"compute_fbank.py: {source} not found (made by prepare.sh's noise stage)")
        output = args.fbank_dir / "synth_cuts_noise.jsonl.gz"
        if output.is_file():
            logging.info(f"{output} exists, skipping")
        else:
            noise_recordings_to_fbank(
                RecordingSet.from_file(source), output, num_jobs=args.nj, backend=args.backend
            )


if __name__ == "__main__":
    main()
