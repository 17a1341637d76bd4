"""The synth dataset's part of the lstm_transducer/ recipe: names, test sets and defaults.

The scripts in this folder are shared with egs/librispeech/ASR/lstm_transducer/ (relative
symlinks to these files); each reads the recipe_defaults.py of the folder it is run from
(icefall_lite.cli.recipe.load_recipe_defaults).
"""

from typing import List

DATASET = "synth"  # cut files: data/fbank/synth_cuts_<split>.jsonl.gz
LANG_DIR = "data/lang_bpe_128"  # bpe.model and tokens.txt (prepare.sh's BPE stage)
TEST_SETS = ("dev", "test-synth", "test-human")
VALID_SPLITS = ("dev",)
EXP_DIR = "lstm_transducer/exp"
# The training data's per-bin statistics for streaming normalisation (dump_mel_stats.py); in
# the experiment folder, as the reference writes them beside its results.
MEL_STATS = f"{EXP_DIR}/mel_stats.pt"
# Streaming: chunks of 8 encoder frames (48 fbank frames, 480 ms).
CHUNK_SIZE = 8

TRAIN_USAGE = """\
Usage (from egs/synth/ASR, after ./prepare.sh):

  # defaults: the cpu preset (2.6 M parameters), full RNN-T loss plus a CTC head (weight 1),
  # AdamW with the reference's warm-up / hold / exponential-decay schedule and EMA weights
  ./lstm_transducer/train.py

  # the reference's model sizes (on a GPU, with their BPE sizes)
  ./lstm_transducer/train.py --lstm-preset testing   # 49 M, sentencepiece 1023
  ./lstm_transducer/train.py --lstm-preset base      # 85 M, sentencepiece 8703

  # a declared global batch of 240 s: --max-duration becomes 240 / (2 x 4) = 30
  ./lstm_transducer/train.py --global-batch-size 240 --accum-grad 2 --world-size 4

  # resume mid-epoch (exact, EMA and schedule included), or fine-tune with a fresh schedule
  ./lstm_transducer/train.py --start-batch 600
  ./lstm_transducer/train.py --init-from other/exp/epoch-10.pt --hold-steps 0 \\
      --exp-dir lstm_transducer/exp-ft

  # the pruned RNN-T loss instead of the full one
  ./lstm_transducer/train.py --rnnt-loss pruned
"""

# Measured on the 2-core CPU (RESULTS.md, the lstm_transducer section): AdamW at 2e-3, a short
# warm-up, a hold and half-life sized to a few thousand steps, the EMA at 0.998, a CTC head.
SYNTH_DEFAULTS = dict(
    lstm_preset="cpu",
    rnnt_loss="full",
    # A CTC head at full weight: through the transducer loss alone the LSTM encoder learns
    # little acoustics in the first epochs (greedy output stops after a word or two); with
    # CTC at 1.0 its valid RNN-T loss after 2 epochs is what 6 epochs gave without it
    # (0.617 vs 0.673 at epoch 2) and CTC greedy decodes (RESULTS.md, "Fifth look").
    use_ctc=True,
    ctc_loss_scale=1.0,
    optim="adamw",
    weight_decay=1e-3,
    lr_schedule="warmup_hold_decay",
    base_lr=2e-3,
    warmup_steps=200,
    # Held 3x and decayed 2x longer than first chosen: valid loss 0.604 vs 0.630 after 6
    # epochs (RESULTS.md, "Third run"); the LR ends the 6 epochs at ~1/3 of its peak.
    hold_steps=3000,
    half_life_steps=1500,
    min_lr=2e-5,
    ema=0.998,
    warm_step=0,
    num_epochs=6,
    max_duration=30,
    save_every_n=250,
    keep_last_k=30,
    average_period=10,
    exp_dir=EXP_DIR,
    bpe_model=f"{LANG_DIR}/bpe.model",
    num_workers=1,
    enable_spec_aug=False,
    enable_musan=False,
    noise_cuts="synth_cuts_noise.jsonl.gz",
)
TRAIN_DEFAULTS = SYNTH_DEFAULTS

# Fixed training parameters that differ from the loop's (get_training_params).
TRAIN_PARAMS = {
    "model_family": "lstm_transducer",
    "log_interval": 20,
    "reset_interval": 100,
    "valid_interval": 0,  # validate at epoch ends only: the dev set is small
}


def add_arguments(parser) -> None:
    """Flags of this dataset only (none)."""


def train_splits(params) -> List[str]:
    """The cut splits trained on."""
    return ["train"]
