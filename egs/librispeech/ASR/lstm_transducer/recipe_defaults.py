"""The LibriSpeech part of the lstm_transducer/ recipe: names, test sets and defaults.

The other *.py files in this folder are relative symlinks to egs/synth/ASR/lstm_transducer/;
each reads the recipe_defaults.py of the folder it is run from, i.e. this one.
"""

from typing import List

from icefall_lite.utils import str2bool

DATASET = "librispeech"  # cut files: data/fbank/librispeech_cuts_<split>.jsonl.gz
LANG_DIR = "data/lang_bpe_500"
TEST_SETS = ("test-clean", "test-other")
VALID_SPLITS = ("dev-clean", "dev-other")
EXP_DIR = "lstm_transducer/exp"
MEL_STATS = f"{EXP_DIR}/mel_stats.pt"
CHUNK_SIZE = 8

TRAIN_USAGE = """\
Usage (from egs/librispeech/ASR, after ./prepare.sh):

  # the reference's `testing` model (49 M with its sentencepiece 1023; a little smaller with
  # prepare.sh's BPE 500), 4 GPUs, a declared global batch of 4 x 2 x 700 s
  ./lstm_transducer/train.py --world-size 4 --use-fp16 1 --global-batch-size 5600 \\
    --accum-grad 2

  # the `base` model (85 M with sentencepiece 8703: make data/lang_bpe_8703 first; the joint
  # network's learning rate is scaled by 1/sqrt(8704/1024) = 0.343 by default)
  ./lstm_transducer/train.py --world-size 4 --use-fp16 1 --lstm-preset base \\
    --bpe-model data/lang_bpe_8703/bpe.model --half-life-steps 10880

  # fine-tune a trained model with a fresh schedule (its hold already done)
  ./lstm_transducer/train.py --init-from lstm_transducer/exp/epoch-30.pt --hold-steps 0 \\
    --warmup-steps 1700 --exp-dir lstm_transducer/exp-ft
"""

# The reference's LibriSpeech settings where the library's differ.
TRAIN_DEFAULTS = dict(
    lstm_preset="testing",
    rnnt_loss="full",
    optim="adamw",
    lr_schedule="warmup_hold_decay",
    base_lr=4e-3,
    warmup_steps=1632,
    hold_steps=18000,
    half_life_steps=2805,
    min_lr=1e-5,
    ema=0.999,
    warm_step=0,
    num_epochs=100,
    max_duration=700,
    exp_dir=EXP_DIR,
    bpe_model=f"{LANG_DIR}/bpe.model",
    noise_cuts="musan_cuts.jsonl.gz",
)

TRAIN_PARAMS = {"model_family": "lstm_transducer"}


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
    return ["train-all-shuf"] if params.get("full_libri", True) else ["train-clean-100"]
