"""The LibriSpeech part of the zipformer/ recipe: names, test sets and defaults.

The other *.py files in this folder are relative symlinks to egs/synth/ASR/zipformer/ (icefall's
way of sharing a recipe); each reads the recipe_defaults.py of the folder it is run from
(icefall_lite.cli.recipe.load_recipe_defaults), i.e. this one.
"""

from typing import List

from icefall_lite.utils import str2bool

DATASET = "librispeech"  # cut files: data/fbank/librispeech_cuts_<split>.jsonl.gz
LANG_DIR = "data/lang_bpe_500"
TEST_SETS = ("test-clean", "test-other")
VALID_SPLITS = ("dev-clean", "dev-other")

TRAIN_USAGE = """\
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
"""

# The library's flag defaults are icefall's LibriSpeech ones; only data names differ here.
TRAIN_DEFAULTS = dict(
    exp_dir="zipformer/exp",
    bpe_model="data/lang_bpe_500/bpe.model",
    noise_cuts="musan_cuts.jsonl.gz",
)

# The loop's fixed parameters (get_training_params) are icefall's values: nothing to change.
TRAIN_PARAMS = {}


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
