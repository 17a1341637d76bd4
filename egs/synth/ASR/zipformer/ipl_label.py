#!/usr/bin/env python3
"""Pseudo-label unlabeled audio with a trained model, offline (iterative pseudo-labelling).

Usage, from egs/synth/ASR (egs/librispeech/ASR/zipformer/ipl_label.py links here):

  # label every unlabeled cut with the average of the 2 epochs of lowest validation loss
  ./zipformer/ipl_label.py --exp-dir zipformer/exp --ipl-average 2 \\
      --ipl-unlabeled-cuts data/fbank/synth_cuts_unlabeled.jsonl.gz \\
      --ipl-cache zipformer/exp/ipl-cache.jsonl.gz

  # then train on, picking the cache up (labelled cuts + pseudo-labelled ones)
  ./zipformer/train.py --exp-dir zipformer/exp --start-epoch 3 --ipl-restore 1 \\
      --ipl-unlabeled-cuts data/fbank/synth_cuts_unlabeled.jsonl.gz \\
      --ipl-cache zipformer/exp/ipl-cache.jsonl.gz --ipl-p-cache 0

  # a later pass refreshes 20 % of the cache with --epoch/--avg as in decode.py
  ./zipformer/ipl_label.py --exp-dir zipformer/exp --epoch 6 --avg 2 --ipl-p-cache 0.2 \\
      --ipl-unlabeled-cuts data/fbank/synth_cuts_unlabeled.jsonl.gz

The unlabeled cuts may be Lhotse cuts or a NeMo JSON manifest (no text needed), or NeMo tarred
shards with --ipl-tarred-audio. Cuts that cannot be decoded, get an empty label or fall below
--ipl-min-confidence are counted and get no label. The cache is replaced atomically (the
previous generation is kept as ipl-cache.prev.jsonl.gz beside it).
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.ipl_label import get_ipl_label_parser, run_ipl_label  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = get_ipl_label_parser(__doc__.splitlines()[0])
    parser.set_defaults(exp_dir="zipformer/exp", bpe_model=f"{RECIPE.LANG_DIR}/bpe.model")
    return parser


def main() -> None:
    def label(argv):
        run_ipl_label(get_parser(), argv, get_params())

    run_main(Path(__file__).name, label)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
