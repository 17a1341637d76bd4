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
from icefall_lite.utils import AttributeDict  # noqa: E402

# Flag defaults of this recipe (the library's defaults are icefall's LibriSpeech ones), chosen
# by measuring WER against training minutes on a 2-core CPU (RESULTS.md, "egs/synth/ASR: the
# main job"): the run is a few thousand small steps, so what makes early steps count wins.
# - No SpecAugment and no noise mixing: with them the model stayed at ~93 % WER for 1,000
#   steps, without them it was at 54 % (the corpus itself varies voice, room and band).
# - BPE 128 and the CTC head at 0.5: frequent units and a strong CTC pull on the encoder.
# - The Zipformer's internal schedules (dropout, skip rates, regulariser limits) compressed
#   (--ref-duration 2: each 30 s step counts as 15 reference steps) and a slow learning-rate
#   decay (--lr-batches 3000) for a run of ~3,000 steps.
SYNTH_DEFAULTS = dict(
    model_size="tiny",
    # One causal model serves both offline decoding (--chunk-size -1) and streaming.
    causal=True,
    use_ctc=True,
    ctc_loss_scale=0.5,
    decoder_dim=256,
    joiner_dim=256,
    num_epochs=4,
    base_lr=0.045,
    lr_batches=3000,
    lr_epochs=2,
    warm_step=200,
    max_duration=30,
    ref_duration=2,
    # A checkpoint every 250 steps, all kept: the main job decodes them for its WER-vs-time plot.
    save_every_n=250,
    keep_last_k=30,
    average_period=10,
    exp_dir="zipformer/exp",
    bpe_model="data/lang_bpe_128/bpe.model",
    num_workers=1,
    enable_spec_aug=False,
    enable_musan=False,
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
    params.omp_wait_policy = OMP_WAIT_POLICY_CHOICE
    train(params, cuts_prefix="synth", train_splits=["train"], valid_splits=["dev"])


if __name__ == "__main__":
    main()
