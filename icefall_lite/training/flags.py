"""The training flags (icefall's ``train.py`` ones), the loop's fixed parameters, and the checks
that turn a bad flag into one line naming it.

A recipe's ``train.py`` parses flags (:func:`add_training_arguments` + the data module's and the
model's), merges them with its fixed hyper-parameters (:func:`get_training_params` and its own)
and calls :func:`icefall_lite.training.train`.
"""

import argparse
from pathlib import Path

import torch

from icefall_lite.data import cuts_filename
from icefall_lite.data.shar import SHAR_INFO, shar_split_dir
from icefall_lite.dist import add_dist_arguments, is_torchrun
from icefall_lite.ipl.flags import add_ipl_arguments, check_ipl_arguments
from icefall_lite.models import check_model_arguments
from icefall_lite.rnnt import add_rnnt_backend_argument
from icefall_lite.utils import AttributeDict, str2bool

__all__ = [
    "HelpFormatter",
    "add_training_arguments",
    "check_training_arguments",
    "get_training_params",
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
