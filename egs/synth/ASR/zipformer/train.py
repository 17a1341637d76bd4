#!/usr/bin/env python3
"""Train a Zipformer transducer (pruned RNN-T) on the synth corpus.

Usage (from egs/synth/ASR, after ./prepare.sh):

  # defaults: tiny Zipformer sized for a 2-core CPU
  ./zipformer/train.py

  # two CPU processes (Gloo), or GPUs (NCCL) when present
  ./zipformer/train.py --world-size 2 --exp-dir zipformer/exp-ddp

  # the same job under torchrun
  torchrun --nproc-per-node 2 ./zipformer/train.py --exp-dir zipformer/exp-ddp

  # resume: from the end of epoch 3, or from exp/checkpoint-600.pt (mid-epoch, exact)
  ./zipformer/train.py --start-epoch 4
  ./zipformer/train.py --start-batch 600

  # hybrid transducer + CTC, with a larger global batch by gradient accumulation
  ./zipformer/train.py --use-ctc 1 --accum-grad 4

It writes zipformer/exp/epoch-N.pt, checkpoint-N.pt, best-train-loss.pt, best-valid-loss.pt,
log/log-train-* and tensorboard/. Decode with ./zipformer/decode.py --epoch N --avg K.
"""

import argparse

from icefall_lite.data import AsrDataModule
from icefall_lite.models import add_model_arguments
from icefall_lite.training import (
    HelpFormatter,
    add_training_arguments,
    get_training_params,
    train,
)
from icefall_lite.utils import AttributeDict

# Flag defaults of this recipe (the library's defaults are icefall's LibriSpeech ones). The
# corpus is small and the CPU slow, so the run is a few thousand optimizer steps: small batches
# (on this corpus progress follows the number of steps more than the audio seen), a short
# learning-rate decay, and the Zipformer's internal schedules compressed (--ref-duration 10:
# each step counts as 3x its audio against icefall's 600 s reference). The CTC head (hybrid
# training, --ctc-loss-scale 0.2) pulls the encoder towards the audio, which a transducer alone
# learns slowly. Measured in RESULTS.md, "egs/synth/ASR: the main job".
SYNTH_DEFAULTS = dict(
    model_size="tiny",
    # One causal model serves both offline decoding (--chunk-size -1) and streaming.
    causal=True,
    use_ctc=True,
    decoder_dim=256,
    joiner_dim=256,
    num_epochs=6,
    base_lr=0.045,
    lr_batches=500,
    lr_epochs=2,
    warm_step=200,
    max_duration=30,
    ref_duration=10,
    save_every_n=100,
    keep_last_k=5,
    average_period=10,
    exp_dir="zipformer/exp",
    bpe_model="data/lang_bpe_500/bpe.model",
    num_workers=1,
    noise_cuts="synth_cuts_noise.jsonl.gz",
)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_training_arguments(parser)
    add_model_arguments(parser)
    AsrDataModule.add_arguments(parser)
    parser.set_defaults(**SYNTH_DEFAULTS)
    return parser


def get_params() -> AttributeDict:
    """Fixed hyper-parameters: the loop's (see get_training_params) with this recipe's intervals."""
    params = get_training_params()
    params.update(
        {
            "log_interval": 20,
            "lr_warmup_batches": 100,
            "reset_interval": 100,
            "valid_interval": 0,  # validate at epoch ends only: the dev set is small
        }
    )
    return params


def main() -> None:
    args = get_parser().parse_args()
    params = get_params()
    params.update(vars(args))
    train(params, cuts_prefix="synth", train_splits=["train"], valid_splits=["dev"])


if __name__ == "__main__":
    main()
