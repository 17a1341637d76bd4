"""The LibriSpeech part of the conv_ctc/ (Jasper/QuartzNet CTC) recipe: names, test sets and
defaults.

The other *.py files in this folder are relative symlinks to egs/synth/ASR/conv_ctc/ (icefall's
way of sharing a recipe); each reads the recipe_defaults.py of the folder it is run from
(icefall_lite.cli.recipe.load_recipe_defaults), i.e. this one.
"""

from typing import List

from icefall_lite.utils import str2bool

DATASET = "librispeech"  # cut files: data/fbank/librispeech_cuts_<split>.jsonl.gz
LANG_DIR = "data/lang_bpe_500"
LM_DIR = "data/lm"
TEST_SETS = ("test-clean", "test-other")
VALID_SPLITS = ("dev-clean", "dev-other")

TRAIN_USAGE = """\
Usage (from egs/librispeech/ASR, after ./prepare.sh):

  # QuartzNet 15x5 (18.9M) on 4 GPUs, NeMo's optimizer settings, SpecAugment + SpecCutout
  ./conv_ctc/train.py --world-size 4 --conv-preset quartznet15x5 --max-duration 600 \\
      --enable-spec-masks 1 --use-fp16 1

  # Jasper 10x5 dense-residual (333M)
  ./conv_ctc/train.py --world-size 8 --conv-preset jasper10x5dr --base-lr 0.015 \\
      --max-duration 400 --use-fp16 1

  # train-clean-100 only
  ./conv_ctc/train.py --world-size 1 --full-libri 0 --conv-preset quartznet5x5
"""

# NeMo's QuartzNet settings: Novograd (0.8, 0.5), lr 0.01, weight decay 0.001, warm-up then
# cosine decay, SpecAugment masks + SpecCutout rectangles.
TRAIN_DEFAULTS = dict(
    conv_preset="quartznet15x5",
    num_epochs=100,
    optim="novograd",
    base_lr=0.01,
    weight_decay=0.001,
    novograd_betas="0.8,0.5",
    lr_schedule="cosine",
    lr_decay_batches=0,  # the end of --num-epochs, counted from the training cuts (NeMo: max_steps)
    min_lr=1e-5,
    exp_dir="conv_ctc/exp",
    bpe_model="data/lang_bpe_500/bpe.model",
    enable_spec_aug=False,
    enable_spec_masks=True,
    noise_cuts="musan_cuts.jsonl.gz",
)

TRAIN_PARAMS = {"model_family": "conv_ctc", "lr_warmup_batches": 1000}


def add_arguments(parser) -> None:
    """--full-libri."""
    parser.add_argument(
        "--full-libri",
        type=str2bool,
        default=True,
        help="true: train on all 960 h (data/fbank/librispeech_cuts_train-all-shuf.jsonl.gz); "
        "false: train-clean-100 only.",
    )


def train_splits(params) -> List[str]:
    """The cut splits trained on: all 960 h, or train-clean-100 with --full-libri 0."""
    return ["train-all-shuf"] if params.full_libri else ["train-clean-100"]
