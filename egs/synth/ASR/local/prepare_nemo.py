#!/usr/bin/env python3
"""Your own NeMo (or Myrtle.ai) JSON manifests -> Lhotse manifests and fbank cuts.

Usage (prepare.sh's stage 8 runs this when given --nemo-manifest):
  ./local/prepare_nemo.py --train /data/train.json --dev /data/dev.json
  ./local/prepare_nemo.py --train train.json --dev dev.json --strict true --prefix mydata

Each manifest line: {"audio_filepath": ..., "duration": ..., "text": ..., "offset": ...};
relative audio paths are relative to the manifest's folder. Bad lines are logged with their
line number and skipped (``--strict true``: the first one is an error).

Writes data/manifests/<prefix>_{recordings,supervisions}_{train,dev}.jsonl.gz and
data/fbank/<prefix>_cuts_{train,dev}.jsonl.gz (features in data/fbank/<prefix>_feats_<split>).
Train on them with ./zipformer/train.py --cuts-prefix <prefix> (and a BPE model trained on
their text: prepare.sh's stage 8 makes data/lang_bpe_<N>_<prefix>).
"""

import argparse
import logging
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.data.features import manifests_to_fbank  # noqa: E402
from icefall_lite.data.nemo import ManifestError, nemo_to_manifests  # noqa: E402
from icefall_lite.utils import str2bool  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=Path, required=True, help="NeMo manifest of train.")
    parser.add_argument("--dev", type=Path, default=None, help="NeMo manifest of dev.")
    parser.add_argument("--prefix", default="nemo", help="Name in the output files.")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Folder relative audio paths are resolved against (default: each manifest's).",
    )
    parser.add_argument("--strict", type=str2bool, default=False, help="Bad line: error.")
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    parser.add_argument("--fbank-dir", type=Path, default=Path("data/fbank"))
    parser.add_argument("--nj", type=int, default=2, help="Parallel fbank jobs.")
    parser.add_argument(
        "--backend", default="auto", choices=["auto", "kaldifeat", "lhotse"], help="fbank code."
    )
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [prepare_nemo] %(message)s", level="INFO")
    torch.set_num_threads(1)
    args.manifest_dir.mkdir(parents=True, exist_ok=True)
    splits = {"train": args.train}
    if args.dev is not None:
        splits["dev"] = args.dev
    for split, manifest in splits.items():
        if not manifest.is_file():
            sys.exit(f"prepare_nemo.py: {manifest} not found")
        try:
            recordings, supervisions = nemo_to_manifests(
                manifest, data_dir=args.data_dir, strict=args.strict
            )
        except ManifestError as error:
            sys.exit(f"prepare_nemo.py: {error}")
        if len(supervisions) == 0:
            sys.exit(f"prepare_nemo.py: {manifest}: no usable line")
        for kind, manifest_set in (("recordings", recordings), ("supervisions", supervisions)):
            manifest_set.to_file(args.manifest_dir / f"{args.prefix}_{kind}_{split}.jsonl.gz")
        logging.info(f"{manifest}: {len(recordings)} recordings, {len(supervisions)} segments")
        manifests_to_fbank(
            args.manifest_dir,
            args.fbank_dir,
            args.prefix,
            split,
            num_jobs=args.nj,
            backend=args.backend,
        )


if __name__ == "__main__":
    main()
