#!/usr/bin/env python3
"""Train a Zipformer transducer (pruned RNN-T) on LibriSpeech, icefall's recipe.

Usage (from egs/librispeech/ASR, after ./prepare.sh):

  # 4 GPUs, full LibriSpeech (960 h), fp16, icefall's default (medium, 65M) Zipformer
  ./zipformer/train.py \\
    --world-size 4 \\
    --num-epochs 30 \\
    --start-epoch 1 \\
    --use-fp16 1 \\
    --exp-dir zipformer/exp \\
    --full-libri 1 \\
    --max-duration 1000

  # train-clean-100 only, on one GPU, with a larger global batch by gradient accumulation
  ./zipformer/train.py --world-size 1 --full-libri 0 --max-duration 550 --accum-grad 4 \\
    --use-fp16 1 --exp-dir zipformer/exp-100h

  # hybrid transducer + CTC
  ./zipformer/train.py --world-size 4 --use-ctc 1 --use-fp16 1 --max-duration 1000

  # resume after an interruption (end of epoch 10, or mid-epoch checkpoint)
  ./zipformer/train.py --world-size 4 --start-epoch 11 --use-fp16 1 --max-duration 1000
  ./zipformer/train.py --world-size 4 --start-batch 80000 --use-fp16 1 --max-duration 1000

  # fine-tune from a trained model
  ./zipformer/train.py --init-from zipformer/exp/epoch-30.pt --exp-dir zipformer/exp-ft

  # torchrun instead of --world-size
  torchrun --nproc-per-node 4 ./zipformer/train.py --use-fp16 1 --max-duration 1000

It writes zipformer/exp/epoch-N.pt, checkpoint-N.pt, best-train-loss.pt, best-valid-loss.pt,
log/log-train-* and tensorboard/.
"""

import argparse

# Before anything loads torch (and with it libgomp, which reads OMP_WAIT_POLICY once).
from icefall_lite.threads import choose_omp_wait_policy

OMP_WAIT_POLICY_CHOICE = choose_omp_wait_policy()

# isort: split
from icefall_lite.data import AsrDataModule  # noqa: E402
from icefall_lite.models import add_model_arguments  # noqa: E402
from icefall_lite.training import (  # noqa: E402
    HelpFormatter,
    add_training_arguments,
    get_training_params,
    train,
)
from icefall_lite.utils import AttributeDict, str2bool  # noqa: E402

# The library's flag defaults are icefall's LibriSpeech ones; only data names differ here.
LIBRISPEECH_DEFAULTS = dict(
    exp_dir="zipformer/exp",
    bpe_model="data/lang_bpe_500/bpe.model",
    noise_cuts="musan_cuts.jsonl.gz",
)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_training_arguments(parser)
    add_model_arguments(parser)
    AsrDataModule.add_arguments(parser)
    parser.add_argument(
        "--full-libri",
        type=str2bool,
        default=True,
        help="true: train on all 960 h (data/fbank/librispeech_cuts_train-all-shuf.jsonl.gz); "
        "false: train-clean-100 only.",
    )
    parser.set_defaults(**LIBRISPEECH_DEFAULTS)
    return parser


def get_params() -> AttributeDict:
    """Fixed hyper-parameters: the shared loop's (icefall's values)."""
    return get_training_params()


def main() -> None:
    args = get_parser().parse_args()
    params = get_params()
    params.update(vars(args))
    params.omp_wait_policy = OMP_WAIT_POLICY_CHOICE
    train_splits = ["train-all-shuf"] if params.full_libri else ["train-clean-100"]
    train(
        params,
        cuts_prefix="librispeech",
        train_splits=train_splits,
        valid_splits=["dev-clean", "dev-other"],
    )


if __name__ == "__main__":
    main()
