#!/usr/bin/env python3
"""Print hours, utterances, voices and engines per split of the synth corpus (a Markdown table).

Usage:
  ./local/summary.py --manifest-dir data/manifests --fbank-dir data/fbank
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

from lhotse import SupervisionSet

SPLITS = ("train", "dev", "test-synth", "test-human")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    parser.add_argument("--fbank-dir", type=Path, default=Path("data/fbank"))
    args = parser.parse_args()
    print("| split | utterances | hours | voices | engines | cuts with fbank |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for split in SPLITS:
        path = args.manifest_dir / f"synth_supervisions_{split}.jsonl.gz"
        if not path.is_file():
            sys.exit(f"summary.py: {path} not found (made by prepare.sh stage 1 or 3)")
        supervisions = SupervisionSet.from_file(path)
        hours = sum(s.duration for s in supervisions) / 3600
        voices = {s.speaker for s in supervisions}
        engines = Counter(s.custom["engine"] for s in supervisions)
        cuts = args.fbank_dir / f"synth_cuts_{split}.jsonl.gz"
        num_cuts = "-"
        if cuts.is_file():
            import gzip

            with gzip.open(cuts, "rt") as f:
                num_cuts = str(sum(1 for _ in f))
        engine_text = ", ".join(f"{e} {n}" for e, n in sorted(engines.items()))
        print(
            f"| {split} | {len(supervisions)} | {hours:.2f} | {len(voices)} | {engine_text} "
            f"| {num_cuts} |"
        )


if __name__ == "__main__":
    main()
