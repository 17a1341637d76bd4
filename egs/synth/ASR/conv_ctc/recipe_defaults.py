"""The synth dataset's part of the conv_ctc/ (Jasper/QuartzNet CTC) recipe: names, test sets
and defaults.

The scripts in this folder are shared with egs/librispeech/ASR/conv_ctc/ (relative symlinks to
these files); each reads the recipe_defaults.py of the folder it is run from
(icefall_lite.cli.recipe.load_recipe_defaults).
"""

from typing import List

DATASET = "synth"  # cut files: data/fbank/synth_cuts_<split>.jsonl.gz
LANG_DIR = "data/lang_bpe_128"  # bpe.model and tokens.txt (prepare.sh's BPE stage)
LM_DIR = "data/lm"  # the n-gram LM prepare.sh builds from the training transcripts
TEST_SETS = ("dev", "test-synth", "test-human")
VALID_SPLITS = ("dev",)

TRAIN_USAGE = """\
Usage (from egs/synth/ASR, after ./prepare.sh):

  # defaults: the "cpu" QuartzNet-style preset (~0.7M), Novograd, warm-up + cosine decay
  ./conv_ctc/train.py

  # QuartzNet 5x5 or 15x5 (NeMo's architectures) on GPUs
  ./conv_ctc/train.py --conv-preset quartznet15x5 --world-size 4 --max-duration 600 \\
      --base-lr 0.01

  # with SpecAugment masks and SpecCutout rectangles (NeMo's QuartzNet augmentation)
  ./conv_ctc/train.py --enable-spec-masks 1

  # resume from the end of epoch 3
  ./conv_ctc/train.py --start-epoch 4
"""

# Flag defaults of this recipe: a ~30 min run on one CPU thread (6 epochs of ~700 steps).
# - Novograd with QuartzNet's betas (0.8, 0.5) and weight decay 0.001. Its update of a layer
#   has norm up to lr / (1 - beta1) whatever the gradient's size; 0.03 (NeMo: 0.01-0.02 for
#   100k+ steps) with a linear warm-up of 200 steps and cosine decay to 1e-5 at the end of
#   the 6 epochs (--lr-decay-batches 0: counted from the training cuts, ~5,700 steps of 30 s
#   on the default corpus; a fixed 4,400 left the rate at its floor for the last ~1,250).
# - No augmentation, as for the synth Zipformer (RESULTS.md: masks cost more than they gave
#   in runs of a few thousand steps); --enable-spec-masks 1 turns NeMo's on.
SYNTH_DEFAULTS = dict(
    conv_preset="cpu",
    num_epochs=6,
    optim="novograd",
    base_lr=0.03,
    weight_decay=0.001,
    novograd_betas="0.8,0.5",
    lr_schedule="cosine",
    lr_decay_batches=0,
    min_lr=1e-5,
    max_duration=30,
    save_every_n=500,
    keep_last_k=10,
    average_period=10,
    exp_dir="conv_ctc/exp",
    bpe_model="data/lang_bpe_128/bpe.model",
    num_workers=1,
    enable_spec_aug=False,
    enable_spec_masks=False,
    enable_musan=False,
    noise_cuts="synth_cuts_noise.jsonl.gz",
)
TRAIN_DEFAULTS = SYNTH_DEFAULTS

# Fixed training parameters that differ from the loop's (get_training_params).
TRAIN_PARAMS = {
    "model_family": "conv_ctc",
    "log_interval": 20,
    "lr_warmup_batches": 200,
    "reset_interval": 100,
    "valid_interval": 0,  # validate at epoch ends only: the dev set is small
}


def add_arguments(parser) -> None:
    """Flags of this dataset only (none)."""


def train_splits(params) -> List[str]:
    """The cut splits trained on."""
    return ["train"]
