#!/usr/bin/env python3
"""Build the token-level n-gram LM (modified Kneser-Ney, ARPA) from the training transcripts.

Usage (prepare.sh's LM stage):
  ./local/train_ngram_lm.py --text data/lang_bpe_128/transcript_words.txt \\
      --bpe-model data/lang_bpe_128/bpe.model --order 5 --out data/lm/lang_bpe_128_5gram.arpa

--text is the BPE stage's transcript_words.txt: the train split only (dev and test transcripts
never reach the LM). The LM's words are the BPE pieces (see icefall_lite/lm/token_lm.py for
why tokens and not words); decode with --lm-type ngram --lm-path <out>.
"""

import argparse
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.lm import build_token_lm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--text", type=Path, required=True, help="Transcripts, one a line.")
    parser.add_argument("--bpe-model", type=Path, required=True, help="SentencePiece model.")
    parser.add_argument("--order", type=int, default=5, help="Highest n-gram order.")
    parser.add_argument("--out", type=Path, required=True, help="ARPA file to write.")

    def run(argv):
        args = parser.parse_args(argv)
        logging.basicConfig(format="%(asctime)s %(levelname)s [train_lm] %(message)s", level="INFO")
        build_token_lm(args.text, args.bpe_model, args.order, args.out)

    run_main(Path(__file__).name, run)


if __name__ == "__main__":
    main()
