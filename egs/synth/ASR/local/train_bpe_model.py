#!/usr/bin/env python3
"""Train the BPE model on the training transcripts: data/lang_bpe_<N>/{bpe.model,tokens.txt}.

Usage:
  ./local/train_bpe_model.py --cuts data/fbank/synth_cuts_train.jsonl.gz \\
      --lang-dir data/lang_bpe_500 \\
      --vocab-size 500

The transcripts of all ``--cuts`` files (speed-perturbed copies counted once) go to
``<lang-dir>/transcript_words.txt``.
"""

import argparse
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.data.cuts import load_cut_file  # noqa: E402
from icefall_lite.data.tokenizer import train_bpe_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cuts", type=Path, nargs="+", required=True, help="Training cut manifest(s)."
    )
    parser.add_argument("--lang-dir", type=Path, required=True)
    parser.add_argument("--vocab-size", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [train_bpe] %(message)s", level="INFO")
    cut_sets = [load_cut_file(path) for path in args.cuts]
    args.lang_dir.mkdir(parents=True, exist_ok=True)
    transcript_file = args.lang_dir / "transcript_words.txt"
    tmp = transcript_file.with_name(".tmp." + transcript_file.name)
    seen = set()
    with open(tmp, "w", encoding="utf-8") as f:
        for cut in (cut for cuts in cut_sets for cut in cuts):
            if "_sp" in cut.id and cut.id.rsplit("_sp", 1)[0] in seen:
                continue  # a speed-perturbed copy: same text, do not count it three times
            seen.add(cut.id)
            for supervision in cut.supervisions:
                f.write(supervision.text + "\n")
    tmp.replace(transcript_file)
    train_bpe_model(transcript_file, args.lang_dir, args.vocab_size)


if __name__ == "__main__":
    main()
