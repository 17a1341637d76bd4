"""The synth dataset's part of the zipformer/ recipe: names, test sets and defaults.

The scripts in this folder are shared with egs/librispeech/ASR/zipformer/ (relative symlinks to
these files); each reads the recipe_defaults.py of the folder it is run from
(icefall_lite.cli.recipe.load_recipe_defaults).
"""

from typing import List

DATASET = "synth"  # cut files: data/fbank/synth_cuts_<split>.jsonl.gz
LANG_DIR = "data/lang_bpe_128"  # bpe.model and tokens.txt (prepare.sh's BPE stage)
TEST_SETS = ("dev", "test-synth", "test-human")
VALID_SPLITS = ("dev",)

TRAIN_USAGE = """\
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
"""

# Flag defaults of this recipe (the library's defaults are icefall's LibriSpeech ones), chosen
# by measuring WER against training minutes on a 2-core CPU (RESULTS.md, "egs/synth/ASR: the
# main job"): the run is a few thousand small steps, so what makes early steps count wins.
# - No SpecAugment: with icefall's strength (and noise) the model stayed at ~93 % WER for
#   1,000 steps, without them it was at 54 %; mild masks late in training gain little.
# - Noise mixing (the recipe's music-on-hold and coloured noise, p 0.5, SNR 10-20 dB): on the
#   slower corpus of prepare.sh --train-slower-fraction 0.6 it costs about 1 point on dev and
#   gains 10 on test-human (RESULTS.md, "Third round").
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
    num_epochs=6,
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
    enable_musan=True,
    noise_cuts="synth_cuts_noise.jsonl.gz",
)
TRAIN_DEFAULTS = SYNTH_DEFAULTS

# Fixed training parameters that differ from the loop's (get_training_params).
TRAIN_PARAMS = {
    "log_interval": 20,
    "lr_warmup_batches": 100,
    "reset_interval": 100,
    "valid_interval": 0,  # validate at epoch ends only: the dev set is small
}


def add_arguments(parser) -> None:
    """Flags of this dataset only (none)."""


def train_splits(params) -> List[str]:
    """The cut splits trained on."""
    return ["train"]
