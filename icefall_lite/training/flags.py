"""The training flags (icefall's ``train.py`` ones), the loop's fixed parameters, and the checks
that turn a bad flag into one line naming it.

A recipe's ``train.py`` parses flags (:func:`add_training_arguments` + the data module's and the
model's), merges them with its fixed hyper-parameters (:func:`get_training_params` and its own)
and calls :func:`icefall_lite.training.train`.
"""

import argparse
from pathlib import Path
from typing import Tuple

import torch

from icefall_lite.data import cuts_filename
from icefall_lite.data.nemo_tarred import NeMoTarredIterator
from icefall_lite.data.shar import SHAR_INFO, shar_split_dir
from icefall_lite.dist import add_dist_arguments, is_torchrun
from icefall_lite.ipl.flags import add_ipl_arguments, check_ipl_arguments
from icefall_lite.models import check_model_arguments
from icefall_lite.rnnt import add_rnnt_backend_argument
from icefall_lite.utils import AttributeDict, str2bool

OPTIMIZERS = ("scaled_adam", "adamw", "novograd")
LR_SCHEDULES = ("eden", "warmup_hold_decay", "cosine", "poly")

__all__ = [
    "HelpFormatter",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "novograd_betas",
    "add_training_arguments",
    "check_nemo_tarred_arguments",
    "check_training_arguments",
    "get_training_params",
    "resolve_global_batch",
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` keeps the script's usage block as written and shows every flag's default."""


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """icefall's train.py flags (the data module and the model add their own).

    Includes the process-group flags of :func:`icefall_lite.dist.add_dist_arguments`
    (``--world-size``, ``--master-port``, ``--use-ddp-launch``, ``--dist-timeout``) and the
    pseudo-labelling ones of :func:`icefall_lite.ipl.add_ipl_arguments` (``--ipl-*``).
    """
    add_dist_arguments(parser)
    add_rnnt_backend_argument(parser)
    group = parser.add_argument_group("training")
    group.add_argument(
        "--tensorboard", type=str2bool, default=True, help="Write TensorBoard scalars."
    )
    group.add_argument("--num-epochs", type=int, default=30, help="Last epoch to train.")
    group.add_argument(
        "--num-threads",
        type=int,
        default=0,
        help="PyTorch intra-op threads per process; 0: all cores, divided among CPU ranks. "
        "On a shared or loaded CPU, 1 is often fastest.",
    )
    group.add_argument(
        "--start-epoch",
        type=int,
        default=1,
        help="Epoch to start from (counted from 1). If > 1, resume from <exp-dir>/epoch-(N-1).pt.",
    )
    group.add_argument(
        "--start-batch",
        type=int,
        default=0,
        help="If > 0, resume from <exp-dir>/checkpoint-N.pt (takes precedence over "
        "--start-epoch).",
    )
    group.add_argument(
        "--exp-dir",
        type=Path,
        default=Path("zipformer/exp"),
        help="Where checkpoints, logs and TensorBoard files are written.",
    )
    group.add_argument(
        "--bpe-model",
        type=Path,
        default=Path("data/lang_bpe_500/bpe.model"),
        help="SentencePiece model (made by prepare.sh).",
    )
    group.add_argument("--base-lr", type=float, default=0.045, help="Base learning rate.")
    group.add_argument(
        "--novograd-betas",
        type=str,
        default="0.95,0.5",
        help="novograd: beta1,beta2 (momentum, and the average of the layers' gradient norms).",
    )
    group.add_argument(
        "--lr-decay-batches",
        type=int,
        default=10000,
        help="cosine/poly: the optimizer step at which the learning rate reaches --min-lr; "
        "0 = the end of --num-epochs (the first epoch's batches are counted before training, "
        "then multiplied by the epochs; a resumed run keeps the length it started with).",
    )
    group.add_argument(
        "--lr-batches",
        type=float,
        default=7500,
        help="Eden: optimizer steps after which the learning rate starts decaying noticeably.",
    )
    group.add_argument(
        "--lr-epochs",
        type=float,
        default=3.5,
        help="Eden: epochs after which the learning rate starts decaying noticeably.",
    )
    group.add_argument(
        "--ref-duration",
        type=float,
        default=600,
        help="Seconds of audio per global batch that the model's internal schedules assume; "
        "the batch count they see is scaled by max-duration * world-size * accum-grad / this.",
    )
    group.add_argument("--seed", type=int, default=42, help="Random seed.")
    group.add_argument(
        "--save-every-n",
        type=int,
        default=4000,
        help="Save checkpoint-<batch>.pt every this many optimizer steps (0 = never).",
    )
    group.add_argument(
        "--keep-last-k",
        type=int,
        default=30,
        help="Keep only the last k checkpoint-<batch>.pt files (epoch-N.pt are all kept).",
    )
    group.add_argument(
        "--average-period",
        type=int,
        default=200,
        help="Update the running averaged model (model_avg) every this many optimizer steps.",
    )
    group.add_argument(
        "--use-fp16", type=str2bool, default=False, help="float16 autocast + grad scaler (GPU)."
    )
    group.add_argument(
        "--use-bf16", type=str2bool, default=False, help="bfloat16 autocast (GPU or CPU)."
    )
    group.add_argument(
        "--accum-grad",
        type=int,
        default=1,
        help="Accumulate gradients over this many batches per optimizer step (a global batch "
        "of max-duration * world-size * accum-grad seconds).",
    )
    group.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="Initialise the model from this checkpoint's weights (fine-tuning); optimizer and "
        "schedule start fresh. Ignored when resuming. Every tensor of the model must be in it "
        "(see --init-from-allow-missing).",
    )
    group.add_argument(
        "--global-batch-size",
        type=float,
        default=0,
        help="Seconds of audio per optimizer step, as the reference scripts declare a global "
        "batch: --max-duration becomes global / (--accum-grad x world size), which must divide "
        "it exactly (0: use --max-duration as given).",
    )
    group.add_argument(
        "--optim",
        type=str,
        default="scaled_adam",
        choices=OPTIMIZERS,
        help="scaled_adam (icefall's, for the Zipformer), adamw (plain AdamW, for models "
        "without ScaledAdam's parameter-scale-relative updates, e.g. LSTMs) or novograd "
        "(Jasper/QuartzNet's; --novograd-betas).",
    )
    group.add_argument(
        "--weight-decay",
        type=float,
        default=1e-3,
        help="Weight decay of --optim adamw, and of novograd (added to the normalised gradient).",
    )
    group.add_argument(
        "--lr-schedule",
        type=str,
        default="eden",
        choices=LR_SCHEDULES,
        help="eden (--lr-batches, --lr-epochs), warmup_hold_decay (--warmup-steps, "
        "--hold-steps, --half-life-steps, --min-lr), or linear warm-up then cosine / poly "
        "(power 2) decay to --min-lr at --lr-decay-batches.",
    )
    group.add_argument(
        "--lr-cooldown-epochs",
        type=float,
        default=0.0,
        help="End any --lr-schedule with a linear cooldown: over the last this many of "
        "--num-epochs the learning rate falls to 0 (paced in optimizer steps; 0 = off). The "
        "last epochs of a short run then settle instead of stopping at a high rate.",
    )
    group.add_argument(
        "--warmup-steps",
        type=int,
        default=1632,
        help="warmup_hold_decay: optimizer steps of linear warm-up from --min-lr to --base-lr.",
    )
    group.add_argument(
        "--hold-steps",
        type=int,
        default=18000,
        help="warmup_hold_decay: steps at --base-lr after the warm-up (0 when fine-tuning a "
        "checkpoint that has finished its hold).",
    )
    group.add_argument(
        "--half-life-steps",
        type=float,
        default=2805,
        help="warmup_hold_decay: half life in steps of the exponential decay after the hold.",
    )
    group.add_argument(
        "--min-lr",
        type=float,
        default=1e-5,
        help="warmup_hold_decay: the lowest learning rate; cosine/poly: the final one.",
    )
    group.add_argument(
        "--joint-net-lr-factor",
        type=float,
        default=None,
        help="Learning-rate factor of the joint network (joiner). Default: "
        "1/sqrt(vocab_size/1024) for vocabularies over 1024 tokens (0.343 for 8704), else 1.",
    )
    group.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="Decay of an exponential moving average of the weights (e.g. 0.999), used for "
        "validation and saved in every checkpoint ('ema'; decode with --use-ema 1); 0: off.",
    )
    group.add_argument(
        "--init-from-allow-missing",
        type=str2bool,
        default=False,
        help="With --init-from: tensors the checkpoint lacks start from random initialisation "
        "(otherwise that is an error).",
    )
    add_ipl_arguments(parser)


def get_training_params() -> AttributeDict:
    """Fixed hyper-parameters of the training loop (icefall's ``get_params`` part).

    - best_*: best train/valid loss so far and the epoch it was reached in;
    - batch_idx_train: optimizer steps taken so far (drives the schedules; names checkpoints);
    - log_interval / reset_interval: log every N steps; the running loss forgets with a time
      constant of reset_interval steps;
    - valid_interval: also validate every N steps inside an epoch (0 = only at epoch ends);
    - max_nonfinite_batches: consecutive skipped steps that stop training;
    - lr_warmup_batches: Eden's linear learning-rate warm-up, in optimizer steps;
    - feature_dim, subsampling_factor: what the model front end expects / does.
    """
    return AttributeDict(
        {
            "best_train_loss": float("inf"),
            "best_valid_loss": float("inf"),
            "best_train_epoch": -1,
            "best_valid_epoch": -1,
            "batch_idx_train": 0,
            "log_interval": 50,
            "reset_interval": 200,
            "valid_interval": 3000,
            "max_nonfinite_batches": 20,
            "lr_warmup_batches": 500,
            "feature_dim": 80,
            "subsampling_factor": 4,
        }
    )


def check_manifest_head(filename: Path) -> None:
    """A cut manifest's first line must be a JSON object (cheap: the file is read lazily
    later, where a broken one would fail deep inside the sampler without naming it)."""
    import gzip
    import json
    import zlib

    try:
        opener = gzip.open if filename.suffix == ".gz" else open
        with opener(filename, "rt", encoding="utf-8") as f:
            first = f.readline()
        if first.strip() and not isinstance(json.loads(first), dict):
            raise ValueError("the first line is not a JSON object")
    except (OSError, EOFError, UnicodeDecodeError, ValueError, zlib.error) as error:
        raise ValueError(
            f"{filename}: not a readable cut manifest (JSON lines, gzip-compressed when named "
            f".gz): {type(error).__name__}: {' '.join(str(error).split())[:120]}"
        ) from None


def resolve_global_batch(params: AttributeDict, world_size: int) -> None:
    """``--global-batch-size G``: set ``max_duration`` to G / (accum_grad x world_size), or a
    one-line ``ValueError`` naming the three numbers when that does not divide exactly."""
    global_batch = params.get("global_batch_size", 0) or 0
    if global_batch == 0:
        return
    if global_batch < 0:
        raise ValueError(f"--global-batch-size must be positive, got {global_batch}")
    ranks_x_accum = params.accum_grad * world_size
    per_batch = global_batch / ranks_x_accum
    if abs(per_batch - round(per_batch)) > 1e-9:
        raise ValueError(
            f"--global-batch-size {global_batch:g} is not divisible by --accum-grad "
            f"{params.accum_grad} x world size {world_size} (= {ranks_x_accum}): choose a "
            f"global batch that is a multiple of {ranks_x_accum}"
        )
    params.max_duration = float(round(per_batch))


def check_training_arguments(params: AttributeDict) -> None:
    """Raise ``ValueError`` (bad value) or ``FileNotFoundError`` with one line naming the flag."""
    positive = [
        ("--world-size", params.world_size),
        ("--num-epochs", params.num_epochs),
        ("--start-epoch", params.start_epoch),
        ("--base-lr", params.base_lr),
        ("--lr-batches", params.lr_batches),
        ("--lr-epochs", params.lr_epochs),
        ("--ref-duration", params.ref_duration),
        ("--average-period", params.average_period),
        ("--accum-grad", params.accum_grad),
    ]
    if "max_duration" in params:
        positive.append(("--max-duration", params.max_duration))
    for flag, value in positive:
        if value is None or value <= 0:
            raise ValueError(f"{flag} must be positive, got {value}")
    cooldown = params.get("lr_cooldown_epochs", 0.0)
    if not 0 <= cooldown <= params.num_epochs:
        raise ValueError(
            f"--lr-cooldown-epochs must be between 0 and --num-epochs {params.num_epochs}, "
            f"got {cooldown:g}"
        )
    resolve_global_batch(params, params.world_size)
    ema = params.get("ema", 0.0)
    if ema != 0.0 and not 0.0 < ema < 1.0:
        raise ValueError(f"--ema must be in (0, 1) (or 0 to disable), got {ema}")
    if params.get("lr_schedule", "eden") == "warmup_hold_decay":
        for flag, value in (
            ("--warmup-steps", params.warmup_steps),
            ("--hold-steps", params.hold_steps),
            ("--min-lr", params.min_lr),
        ):
            if value < 0:
                raise ValueError(f"{flag} must be non-negative, got {value}")
        if params.half_life_steps <= 0:
            raise ValueError(f"--half-life-steps must be positive, got {params.half_life_steps}")
        if params.min_lr > params.base_lr:
            raise ValueError(f"--min-lr {params.min_lr} is above --base-lr {params.base_lr}")
    factor = params.get("joint_net_lr_factor")
    if factor is not None and factor <= 0:
        raise ValueError(f"--joint-net-lr-factor must be positive, got {factor}")
    if params.get("optim", "scaled_adam") not in OPTIMIZERS:
        raise ValueError(f"--optim {params.optim}: expected one of {OPTIMIZERS}")
    schedule = params.get("lr_schedule", "eden")
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"--lr-schedule {schedule}: expected one of {LR_SCHEDULES}")
    decay = params.lr_decay_batches
    if (
        schedule in ("cosine", "poly")
        and decay != 0
        and decay <= params.get("lr_warmup_batches", 0)
    ):
        raise ValueError(
            f"--lr-decay-batches {decay} must exceed the warm-up of "
            f"{params.get('lr_warmup_batches', 0)} steps (or be 0: the end of --num-epochs)"
        )
    if params.get("optim") == "novograd":
        novograd_betas(params.novograd_betas)
        if params.weight_decay < 0:
            raise ValueError(f"--weight-decay must be >= 0, got {params.weight_decay}")
    if params.keep_last_k < 1:
        raise ValueError(f"--keep-last-k must be at least 1, got {params.keep_last_k}")
    for flag, value in (
        ("--start-batch", params.start_batch),
        ("--save-every-n", params.save_every_n),
        ("--num-threads", params.get("num_threads", 0)),
    ):
        if value < 0:
            raise ValueError(f"{flag} must be non-negative, got {value}")
    if params.start_epoch > params.num_epochs:
        raise ValueError(
            f"--start-epoch {params.start_epoch} is after --num-epochs {params.num_epochs}"
        )
    if params.use_fp16 and params.use_bf16:
        raise ValueError("--use-fp16 and --use-bf16 are mutually exclusive")
    if params.use_fp16 and not torch.cuda.is_available():
        raise ValueError("--use-fp16 needs a CUDA GPU; on CPU use --use-bf16 or neither")
    if params.world_size > 1 and torch.cuda.is_available() and not is_torchrun():
        if params.world_size > torch.cuda.device_count():
            raise ValueError(
                f"--world-size {params.world_size} exceeds the {torch.cuda.device_count()} "
                f"visible GPUs"
            )
    exp_dir = Path(params.exp_dir)
    if exp_dir.exists() and not exp_dir.is_dir():
        raise ValueError(f"--exp-dir {exp_dir}: not a directory (it is a file); name a folder")
    if not Path(params.bpe_model).is_file():
        raise FileNotFoundError(
            f"--bpe-model {params.bpe_model} not found: run prepare.sh's BPE stage first"
        )
    if params.init_from is not None and not Path(params.init_from).is_file():
        raise FileNotFoundError(f"--init-from {params.init_from} not found")
    if params.start_batch > 0:
        resume = Path(params.exp_dir) / f"checkpoint-{params.start_batch}.pt"
        if not resume.is_file():
            raise FileNotFoundError(f"--start-batch {params.start_batch}: {resume} not found")
    elif params.start_epoch > 1:
        resume = Path(params.exp_dir) / f"epoch-{params.start_epoch - 1}.pt"
        if not resume.is_file():
            raise FileNotFoundError(f"--start-epoch {params.start_epoch}: {resume} not found")
    # The splits are named by train() (a test may check the flags alone).
    splits = list(params.get("train_splits", [])) + list(params.get("valid_splits", []))
    if check_nemo_tarred_arguments(params):  # the training splits come from the tars
        splits = list(params.get("valid_splits", []))
    if params.get("cuts_prefix") and params.get("shar_dir") is not None:
        for split in splits:
            folder = shar_split_dir(params.shar_dir, params.cuts_prefix, split)
            if not (folder / SHAR_INFO).is_file():
                raise FileNotFoundError(
                    f"--shar-dir {params.shar_dir}: {folder.name}/{SHAR_INFO} not found (made by "
                    f"prepare.sh's Shar stage, written last)"
                )
    elif params.get("cuts_prefix"):
        for split in splits:
            filename = cuts_filename(params.manifest_dir, params.cuts_prefix, split)
            if not filename.is_file():
                raise FileNotFoundError(
                    f"--manifest-dir {params.manifest_dir}: {filename.name} not found (made by "
                    f"prepare.sh's fbank stage)"
                )
            check_manifest_head(filename)
    check_model_arguments(params)
    check_ipl_arguments(params)


def check_nemo_tarred_arguments(params: AttributeDict) -> bool:
    """``--nemo-tarred-manifest`` and ``--nemo-tarred-audio``: both or neither, their files
    present, one manifest or one per tar. Returns whether they are given."""
    manifest, audio = params.get("nemo_tarred_manifest"), params.get("nemo_tarred_audio")
    if not manifest and not audio:
        return False
    if not manifest or not audio:
        given, needed = (
            ("--nemo-tarred-manifest", "--nemo-tarred-audio 'DIR/audio_{0..N}.tar'")
            if manifest
            else ("--nemo-tarred-audio", "--nemo-tarred-manifest DIR/tarred_audio_manifest.json")
        )
        raise ValueError(f"{given} needs {needed}")
    try:
        NeMoTarredIterator(manifest, audio)  # checks the files; reads nothing
    except (OSError, ValueError) as error:
        raise ValueError(f"--nemo-tarred-manifest/--nemo-tarred-audio: {error}") from None
    return True


def novograd_betas(text: str) -> Tuple[float, float]:
    """``"0.95,0.5"`` -> (0.95, 0.5); ``ValueError`` naming --novograd-betas otherwise."""
    try:
        betas = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        betas = ()
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"--novograd-betas {text}: expected two numbers in [0, 1), e.g. 0.95,0.5")
    return betas
