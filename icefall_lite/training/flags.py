"""The transducer/CTC training loop every recipe's ``train.py`` shares.

A recipe's ``train.py`` parses flags (``add_training_arguments`` + the data module's and the
model's), merges them with its fixed hyper-parameters and calls :func:`train`. Everything else
lives here, once:

* :func:`compute_loss`: one batch -> loss (with the simple/pruned warm-up) and metrics;
* :func:`train_one_epoch`: gradient accumulation, mixed precision, non-finite batch skipping,
  running model average, mid-epoch checkpoints, TensorBoard, periodic validation;
* :func:`compute_validation_loss`;
* :func:`run`: one rank's whole job (DDP set-up, model/optimizer/scheduler, resume or
  ``--init-from``, OOM scan on GPU, the epoch loop, ``epoch-N.pt`` / ``best-*.pt``).

Files written under ``--exp-dir`` follow icefall: ``epoch-N.pt``, ``checkpoint-<batch>.pt``,
``best-train-loss.pt``, ``best-valid-loss.pt``, ``log/log-train-*``, ``tensorboard/``.

Exact resume: a checkpoint holds, besides model/average/optimizer/scheduler/scaler, the sampler
position, every rank's RNG states and adaptive regulariser state (``Whiten`` probabilities, kept
out of the model's ``state_dict``) and the running loss tracker. Resuming with ``--start-batch``
(or ``--start-epoch``) restores them so that, on CPU with ``--num-workers 0``, the final
parameters are bit-identical to those of an unbroken run.
"""

import argparse
import contextlib
import copy
import logging
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from icefall_lite.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    remove_checkpoints,
    restore_rng_state,
    save_checkpoint,
    update_averaged_model,
)
from icefall_lite.data import (
    AsrDataModule,
    conv2d_subsampled_frames,
    cuts_filename,
    filter_cuts_for_training,
    load_bpe_model,
)
from icefall_lite.dist import (
    add_dist_arguments,
    choose_device,
    cleanup_dist,
    is_torchrun,
    launch,
    setup_dist,
)
from icefall_lite.models import build_model, check_model_arguments, transducer_loss_scales
from icefall_lite.models.zipformer.scaling import (
    get_regulariser_state,
    set_batch_count,
    set_regulariser_state,
)
from icefall_lite.rnnt import add_rnnt_backend_argument, resolve_backend, set_backend
from icefall_lite.utils import (
    AttributeDict,
    MetricsTracker,
    atomic_open,
    get_env_info,
    setup_logger,
    str2bool,
)

__all__ = [
    "HelpFormatter",
    "NonFiniteLossError",
    "add_training_arguments",
    "check_training_arguments",
    "compute_loss",
    "compute_validation_loss",
    "get_training_params",
    "restore_regulariser_state",
    "run",
    "scan_pessimistic_batches_for_oom",
    "train",
    "train_one_epoch",
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` keeps the script's usage block as written and shows every flag's default."""


class NonFiniteLossError(RuntimeError):
    """Raised when too many consecutive batches gave a non-finite loss or gradient."""


# --------------------------------------------------------------------------------------------
# Flags and fixed parameters


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """icefall's train.py flags (the data module and the model add their own).

    Includes the process-group flags of :func:`icefall_lite.dist.add_dist_arguments`
    (``--world-size``, ``--master-port``, ``--use-ddp-launch``, ``--dist-timeout``).
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
        "schedule start fresh. Ignored when resuming.",
    )


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
    if "cuts_prefix" in params:
        for split in list(params.train_splits) + list(params.valid_splits):
            filename = cuts_filename(params.manifest_dir, params.cuts_prefix, split)
            if not filename.is_file():
                raise FileNotFoundError(
                    f"--manifest-dir {params.manifest_dir}: {filename.name} not found (made by "
                    f"prepare.sh's fbank stage)"
                )
    check_model_arguments(params)


# --------------------------------------------------------------------------------------------
# Random state


def fix_random_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def preserved_rng_state():
    """Run a block (validation) without moving the training RNG streams."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def _gather_rank_states(
    model: nn.Module, world_size: int
) -> Tuple[List[Dict[str, Any]], List[Dict[str, float]]]:
    """Every rank's RNG states and adaptive regulariser state (see ``get_regulariser_state``;
    ranks differ, each adapts on its own batches), in rank order: one collective call when
    world_size > 1, made on all ranks.

    Returns:
      (rng_states, regulariser_states), each a list of world_size dicts.
    """
    state = {"rng": capture_rng_state(), "regulariser": get_regulariser_state(_unwrap(model))}
    gathered: List[Any] = [state] if world_size == 1 else [None] * world_size
    if world_size > 1:
        dist.all_gather_object(gathered, state)
    return [g["rng"] for g in gathered], [g["regulariser"] for g in gathered]


def restore_regulariser_state(
    model: nn.Module, checkpoint: Dict[str, Any], rank: int, world_size: int
) -> None:
    """Put this rank's adaptive regulariser state from a training checkpoint into ``model``.

    A checkpoint from before this state was saved has no ``regulariser_states``: the defaults
    are kept (and logged). One written with another world size (possible with
    ``--start-epoch``) gives every rank rank 0's state.
    """
    states = checkpoint.get("regulariser_states")
    if states is None:
        logging.info(
            "The checkpoint has no regulariser state (written by an older version): "
            "Whiten probabilities start from their defaults"
        )
        return
    if len(states) == world_size:
        state = states[rank]
    else:
        logging.warning(
            f"The checkpoint holds regulariser state for {len(states)} rank(s), this run has "
            f"{world_size}: every rank starts from rank 0's"
        )
        state = states[0]
    set_regulariser_state(_unwrap(model), state)


# --------------------------------------------------------------------------------------------
# Small helpers


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DDP) else model


def _autocast(params: AttributeDict, device: torch.device):
    if params.use_fp16:
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    if params.use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cut_ids(batch: Dict[str, Any]) -> List[str]:
    cuts = batch.get("supervisions", {}).get("cut")
    return [cut.id for cut in cuts] if cuts is not None else []


def _all_ranks_true(flag: bool, device: torch.device, world_size: int) -> bool:
    if world_size == 1:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def _grads_are_finite(model: nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([g.detach().float().abs().sum() for g in grads]).isfinite().all())


def adjusted_batch_count(params: AttributeDict) -> float:
    """Optimizer steps rescaled to ``--ref-duration`` seconds of audio per step.

    The Zipformer's internal schedules (dropout, skip rates, balancer limits) are written for
    icefall's reference batch size; a run with smaller batches sees proportionally fewer steps.
    """
    seconds_per_step = params.max_duration * params.world_size * params.accum_grad
    return params.batch_idx_train * seconds_per_step / params.ref_duration


# --------------------------------------------------------------------------------------------
# Loss of one batch


def compute_loss(
    params: AttributeDict,
    model: nn.Module,
    sp: Any,
    batch: Dict[str, Any],
    is_training: bool,
) -> Tuple[torch.Tensor, MetricsTracker]:
    """Loss of one K2SpeechRecognitionDataset batch.

    Args:
      params: needs prune_range, am_scale, lm_scale, simple_loss_scale, ctc_loss_scale,
        warm_step, use_transducer, use_ctc, batch_idx_train, use_fp16/use_bf16.
      model: :class:`AsrModel` (possibly DDP-wrapped).
      sp: SentencePiece processor mapping texts to token ids.
      batch: ``inputs`` (N, T, 80) fbank, ``supervisions`` with ``text`` and ``num_frames``.
      is_training: build the autograd graph.
    Returns:
      loss (scalar, summed over the batch) and a MetricsTracker with ``frames`` (encoder
      frames), ``utterances``, ``loss``, ``simple_loss``, ``pruned_loss``, ``ctc_loss`` (sums).
    """
    device = next(model.parameters()).device
    features = batch["inputs"].to(device)
    if features.ndim != 3:
        raise ValueError(f"compute_loss: expected inputs (N, T, C), got {tuple(features.shape)}")
    supervisions = batch["supervisions"]
    feature_lens = supervisions["num_frames"].to(device)
    texts = supervisions["text"]
    token_ids = sp.encode(texts, out_type=int)

    simple_scale, pruned_scale = transducer_loss_scales(
        params.batch_idx_train, params.warm_step, params.simple_loss_scale
    )
    with torch.set_grad_enabled(is_training), _autocast(params, device):
        simple_loss, pruned_loss, ctc_loss = model(
            x=features,
            x_lens=feature_lens,
            y=token_ids,
            prune_range=params.prune_range,
            am_scale=params.am_scale,
            lm_scale=params.lm_scale,
        )
        loss = features.new_zeros((), dtype=torch.float32)
        if params.use_transducer:
            loss = loss + simple_scale * simple_loss + pruned_scale * pruned_loss
        if params.use_ctc:
            loss = loss + params.ctc_loss_scale * ctc_loss

    info = MetricsTracker()
    info["frames"] = int(conv2d_subsampled_frames(feature_lens).sum().item())
    info["utterances"] = len(texts)
    info["loss"] = loss.detach().cpu().item()
    if params.use_transducer:
        info["simple_loss"] = simple_loss.detach().cpu().item()
        info["pruned_loss"] = pruned_loss.detach().cpu().item()
    if params.use_ctc:
        info["ctc_loss"] = ctc_loss.detach().cpu().item()
    return loss, info


def compute_validation_loss(
    params: AttributeDict,
    model: nn.Module,
    sp: Any,
    valid_dl: Iterable,
    world_size: int = 1,
) -> MetricsTracker:
    """Summed losses over the validation set (all ranks' shares when world_size > 1).

    Runs in eval mode with the RNG streams preserved, so validating does not change what the
    training run does next.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    tot_loss = MetricsTracker()
    with preserved_rng_state():
        for batch in valid_dl:
            _, info = compute_loss(params, model, sp, batch, is_training=False)
            if math.isfinite(info["loss"]):
                tot_loss = tot_loss + info
            else:
                logging.warning(f"Validation: non-finite loss on cuts {_cut_ids(batch)}")
    if world_size > 1:
        tot_loss.reduce(device)
    if was_training:
        model.train()
    frames = tot_loss["frames"]
    loss_value = tot_loss["loss"] / frames if frames > 0 else float("inf")
    params.valid_loss = loss_value
    if loss_value < params.best_valid_loss:
        params.best_valid_epoch = params.cur_epoch
        params.best_valid_loss = loss_value
    return tot_loss


# --------------------------------------------------------------------------------------------
# Checkpoints


def save_training_checkpoint(
    filename: Union[str, Path],
    params: AttributeDict,
    model: nn.Module,
    model_avg: Optional[nn.Module],
    optimizer: Optional[torch.optim.Optimizer],
    scheduler: Any,
    scaler: Optional[Any],
    sampler: Optional[Any],
    rng_states: List[Dict[str, Any]],
    train_loss_tracker: Optional[MetricsTracker],
    rank: int,
    regulariser_states: List[Dict[str, float]],
) -> None:
    """Write everything an exact resume needs (rank 0 writes; others return).

    ``rng_states`` and ``regulariser_states`` hold every rank's state in rank order
    (from ``_gather_rank_states``, called on all ranks).
    """
    if rank != 0:
        return
    # Every rank's RNG states (save_checkpoint's own "rng_state" is rank 0's only) and
    # regulariser states (outside the model's state_dict, whose format averaging and export
    # rely on); params are stored as plain types by save_checkpoint.
    extra = dict(params)
    extra["rng_states"] = rng_states
    extra["regulariser_states"] = regulariser_states
    extra["train_loss_tracker"] = dict(train_loss_tracker) if train_loss_tracker else {}
    save_checkpoint(
        filename,
        model=_unwrap(model),
        model_avg=model_avg,
        params=extra,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        sampler=sampler,
        rank=rank,
    )


def _copy_atomically(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a uniquely named temporary file beside ``dst``."""
    with atomic_open(dst, "wb") as f, open(src, "rb") as source:
        shutil.copyfileobj(source, f)


def save_epoch_checkpoint(
    params: AttributeDict,
    model: nn.Module,
    model_avg: Optional[nn.Module],
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    sampler: Any,
    rng_states: List[Dict[str, Any]],
    rank: int,
    regulariser_states: List[Dict[str, float]],
) -> None:
    """``epoch-N.pt``, copied to ``best-train-loss.pt`` / ``best-valid-loss.pt`` when best."""
    if rank != 0:
        return
    exp_dir = Path(params.exp_dir)
    filename = exp_dir / f"epoch-{params.cur_epoch}.pt"
    save_training_checkpoint(
        filename,
        params,
        model,
        model_avg,
        optimizer,
        scheduler,
        scaler,
        sampler,
        rng_states,
        None,
        rank,
        regulariser_states,
    )
    if params.best_train_epoch == params.cur_epoch:
        _copy_atomically(filename, exp_dir / "best-train-loss.pt")
    if params.best_valid_epoch == params.cur_epoch:
        _copy_atomically(filename, exp_dir / "best-valid-loss.pt")


def resume_checkpoint_path(params: AttributeDict) -> Optional[Path]:
    """The checkpoint ``--start-batch`` / ``--start-epoch`` ask to resume from, if any."""
    exp_dir = Path(params.exp_dir)
    if params.start_batch > 0:
        return exp_dir / f"checkpoint-{params.start_batch}.pt"
    if params.start_epoch > 1:
        return exp_dir / f"epoch-{params.start_epoch - 1}.pt"
    return None


# Bookkeeping values a resumed run takes over from the checkpoint.
_RESUMED_KEYS = (
    "best_train_epoch",
    "best_valid_epoch",
    "batch_idx_train",
    "best_train_loss",
    "best_valid_loss",
)


# --------------------------------------------------------------------------------------------
# One epoch


def train_one_epoch(
    params: AttributeDict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    sp: Any,
    train_dl: Iterable,
    valid_dl: Optional[Iterable],
    scaler: Any,
    model_avg: Optional[nn.Module] = None,
    tb_writer: Optional[Any] = None,
    world_size: int = 1,
    rank: int = 0,
    resume_state: Optional[Dict[str, Any]] = None,
) -> None:
    """Train for one epoch (or the rest of one, when resuming mid-epoch).

    Every ``params.accum_grad`` batches make one optimizer step. A step whose loss (on any rank)
    or gradient is not finite is skipped with a warning naming the cuts; after
    ``params.max_nonfinite_batches`` consecutive skipped steps :class:`NonFiniteLossError` is
    raised (the checkpoints on disk are all from before the trouble). A trailing partial
    accumulation window at the end of the epoch is dropped.

    Args:
      params: flags + fixed parameters; ``batch_idx_train``, ``train_loss`` and ``best_train_*``
        are updated in place.
      model: the (possibly DDP-wrapped) model, already on its device.
      optimizer, scheduler: ScaledAdam and Eden (``step_batch``, ``get_last_lr``).
      sp: SentencePiece processor.
      train_dl: the training DataLoader (its ``sampler`` is saved in checkpoints).
      valid_dl: validation DataLoader for periodic validation (``params.valid_interval``).
      scaler: ``torch.amp.GradScaler`` (enabled only with --use-fp16).
      model_avg: running average of the model in float64 (rank 0 only).
      tb_writer: TensorBoard SummaryWriter (rank 0 only) or None.
      resume_state: ``{"rng_states": [...], "train_loss_tracker": {...}}`` from a mid-epoch
        checkpoint; the RNG states are restored after the data iterator is created.
    """
    device = next(model.parameters()).device
    model.train()
    tot_loss = MetricsTracker()
    data_iter = iter(train_dl)  # creating the iterator draws from the global RNG
    if resume_state is not None:
        restore_rng_state(resume_state["rng_states"][rank])
        tot_loss.update(resume_state.get("train_loss_tracker", {}))

    sampler = getattr(train_dl, "sampler", None)
    window_info = MetricsTracker()
    window_size = 0
    window_finite = True
    window_bad_cuts: List[str] = []
    num_consecutive_bad = 0

    # Counted from the start of the epoch (a mid-epoch resume starts at 0: the ETA is rough).
    params.epoch_cuts_done = 0
    for batch in data_iter:
        params.epoch_cuts_done += len(batch["supervisions"]["num_frames"])
        set_batch_count(_unwrap(model), adjusted_batch_count(params))
        is_last_in_window = window_size + 1 == params.accum_grad
        loss, loss_info = compute_loss(params, model, sp, batch, is_training=True)
        sync_context = (
            model.no_sync()
            if isinstance(model, DDP) and not is_last_in_window
            else contextlib.nullcontext()
        )
        with sync_context:
            # Backward even on a non-finite loss: every DDP rank must take part in the
            # gradient all-reduce; the step is dropped below if anything is not finite.
            scaler.scale(loss).backward()
        window_size += 1
        if math.isfinite(loss_info["loss"]):
            window_info = window_info + loss_info
        else:
            window_finite = False
            window_bad_cuts.extend(_cut_ids(batch))
        if not is_last_in_window:
            continue

        step_ok = _all_ranks_true(window_finite, device, world_size)
        # With fp16 the grad scaler owns inf/nan gradients (it skips and lowers the scale).
        if step_ok and not params.use_fp16:
            step_ok = _grads_are_finite(model)
        if not step_ok:
            optimizer.zero_grad()
            num_consecutive_bad += 1
            logging.warning(
                f"Non-finite loss or gradient at step {params.batch_idx_train + 1} (epoch "
                f"{params.cur_epoch}); skipping it. Cuts on rank {rank}: "
                f"{window_bad_cuts or 'none bad here (another rank or the gradient)'}"
            )
            if num_consecutive_bad >= params.max_nonfinite_batches:
                raise NonFiniteLossError(
                    f"{num_consecutive_bad} consecutive steps had a non-finite loss or gradient; "
                    f"stopping. The last good checkpoint in {params.exp_dir} is intact; try a "
                    f"lower --base-lr, check the cuts named above, or use --use-fp16 0"
                )
        else:
            num_consecutive_bad = 0
            params.batch_idx_train += 1
            scheduler.step_batch(params.batch_idx_train)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
            tot_loss = (tot_loss * (1 - 1 / params.reset_interval)) + window_info
            _after_step(
                params,
                model,
                model_avg,
                optimizer,
                scheduler,
                scaler,
                sampler,
                sp,
                valid_dl,
                tb_writer,
                window_info,
                tot_loss,
                world_size,
                rank,
                device,
            )
        window_info = MetricsTracker()
        window_size = 0
        window_finite = True
        window_bad_cuts = []

    if window_size > 0:
        logging.info(
            f"Epoch {params.cur_epoch}: dropping the last {window_size} batch(es), fewer than "
            f"--accum-grad {params.accum_grad}"
        )
        optimizer.zero_grad()

    frames = tot_loss["frames"]
    params.train_loss = tot_loss["loss"] / frames if frames > 0 else float("inf")
    if params.train_loss < params.best_train_loss:
        params.best_train_epoch = params.cur_epoch
        params.best_train_loss = params.train_loss


def _format_minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def training_progress(params: AttributeDict, epoch_fraction: float) -> str:
    """``epoch k/N, elapsed .. min, ETA .. min`` for the log line of the current step.

    ``params.train_seconds`` is the training wall time so far (carried over on resume);
    the remaining time is extrapolated from this run's speed over the epochs it has covered
    (``epoch_fraction`` of the current epoch is done).
    """
    done_in_run = (params.cur_epoch - params.start_epoch) + epoch_fraction
    run_seconds = time.time() - params.run_start_time
    left = params.num_epochs - params.cur_epoch + 1 - epoch_fraction
    eta = _format_minutes(run_seconds / done_in_run * left) if done_in_run > 0 else "?"
    return (
        f"epoch {params.cur_epoch}/{params.num_epochs} ({100 * epoch_fraction:.0f}%), "
        f"elapsed {_format_minutes(params.train_seconds)}, ETA {eta}"
    )


def _after_step(
    params: AttributeDict,
    model: nn.Module,
    model_avg: Optional[nn.Module],
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    sampler: Any,
    sp: Any,
    valid_dl: Optional[Iterable],
    tb_writer: Optional[Any],
    step_info: MetricsTracker,
    tot_loss: MetricsTracker,
    world_size: int,
    rank: int,
    device: torch.device,
) -> None:
    """Averaging, checkpointing, grad-scale care, logging and validation after a step."""
    step = params.batch_idx_train
    # Training wall time so far, stored in every checkpoint (WER-vs-training-time curves).
    if "run_start_time" in params:  # set by run(); absent when a test drives the loop
        params.train_seconds = (
            params.get("train_seconds_before_run", 0.0) + time.time() - params.run_start_time
        )
    if rank == 0 and model_avg is not None and step % params.average_period == 0:
        update_averaged_model(params=params, model_cur=_unwrap(model), model_avg=model_avg)

    if params.save_every_n > 0 and step % params.save_every_n == 0:
        rng_states, regulariser_states = _gather_rank_states(model, world_size)
        save_training_checkpoint(
            Path(params.exp_dir) / f"checkpoint-{step}.pt",
            params,
            model,
            model_avg,
            optimizer,
            scheduler,
            scaler,
            sampler,
            rng_states,
            tot_loss,
            rank,
            regulariser_states,
        )
        remove_checkpoints(out_dir=params.exp_dir, topk=params.keep_last_k, rank=rank)

    if params.use_fp16 and step % 100 == 0:
        _tend_grad_scale(scaler, step, params.exp_dir)

    if step % params.log_interval == 0:
        cur_lr = max(scheduler.get_last_lr())
        grad_scale = scaler.get_scale() if params.use_fp16 else 1.0
        step_frames = max(step_info["frames"], 1)
        total_frames = max(tot_loss["frames"], 1)
        progress = ""
        if "run_start_time" in params:
            done, total = params.get("epoch_cuts_done", 0), params.get("epoch_num_cuts", 0)
            progress = f"{training_progress(params, min(1.0, done / max(total, 1)))}, "
        logging.info(
            f"Epoch {params.cur_epoch}, step {step}, {progress}"
            f"loss[{step_info['loss'] / step_frames:.4g} "
            f"over {step_info['frames']} frames], tot_loss[{tot_loss['loss'] / total_frames:.4g}]"
            f", lr: {cur_lr:.3e}" + (f", grad_scale: {grad_scale}" if params.use_fp16 else "")
        )
        if tb_writer is not None:
            tb_writer.add_scalar("train/learning_rate", cur_lr, step)
            tb_writer.add_scalar("train/grad_scale", grad_scale, step)
            for key, value in step_info.norm_items():
                tb_writer.add_scalar(f"train/current_{key}", value, step)
            for key, value in tot_loss.norm_items():
                tb_writer.add_scalar(f"train/tot_{key}", value, step)

    if valid_dl is not None and params.valid_interval > 0 and step % params.valid_interval == 0:
        _validate_and_log(params, model, sp, valid_dl, tb_writer, world_size)


def _validate_and_log(
    params: AttributeDict,
    model: nn.Module,
    sp: Any,
    valid_dl: Iterable,
    tb_writer: Optional[Any],
    world_size: int,
) -> None:
    logging.info("Computing validation loss")
    valid_info = compute_validation_loss(params, model, sp, valid_dl, world_size)
    logging.info(f"Epoch {params.cur_epoch}, validation: {valid_info}")
    if torch.cuda.is_available():
        max_mb = torch.cuda.max_memory_allocated() // 1000000
        logging.info(f"Maximum memory allocated so far is {max_mb}MB")
    if tb_writer is not None:
        for key, value in valid_info.norm_items():
            tb_writer.add_scalar(f"train/valid_{key}", value, params.batch_idx_train)


def _tend_grad_scale(scaler: Any, step: int, exp_dir: Union[str, Path]) -> None:
    """Let a collapsed fp16 grad scale recover, and stop if it keeps collapsing.

    GradScaler only grows the scale after a long run of finite steps; a scale that fell to a
    few units usually means a transient blow-up, so it is nudged back up periodically.
    """
    scale = scaler.get_scale()
    if scale < 8.0 or (scale < 32.0 and step % 400 == 0):
        scaler.update(scale * 2.0)
    if scale < 0.01:
        logging.warning(f"fp16 grad scale is small: {scale}")
    if scale < 1.0e-5:
        raise NonFiniteLossError(
            f"fp16 grad scale fell to {scale} at step {step}: the model diverged. Checkpoints in "
            f"{exp_dir} are from before; retry with a lower --base-lr or --use-fp16 0"
        )


# --------------------------------------------------------------------------------------------
# OOM scan (GPU)


def scan_pessimistic_batches_for_oom(
    model: nn.Module,
    train_dl: Any,
    optimizer: torch.optim.Optimizer,
    sp: Any,
    params: AttributeDict,
) -> None:
    """Run forward + backward on the largest batches the sampler can produce, before training.

    Finds out in seconds, not hours, whether ``--max-duration`` fits in GPU memory. The weights
    are not changed (no optimizer step). The sampler is iterated to its end, so call this before
    the epoch loop sets the epoch (not on a sampler restored mid-epoch).
    """
    from lhotse.dataset.sampling.utils import find_pessimistic_batches

    logging.info("Sanity check -- see if any of the batches in epoch 1 would cause OOM.")
    batches, crit_values = find_pessimistic_batches(train_dl.sampler)
    for criterion, cuts in batches.items():
        batch = train_dl.dataset[cuts]
        try:
            loss, _ = compute_loss(params, model, sp, batch, is_training=True)
            loss.backward()
            optimizer.zero_grad()
        except torch.cuda.OutOfMemoryError:
            logging.error(
                "Your GPU ran out of memory with the current max_duration setting. We recommend "
                f"decreasing max_duration and trying again.\nFailing criterion: {criterion} "
                f"(={crit_values[criterion]}) ..."
            )
            raise
        if torch.cuda.is_available():
            logging.info(
                f"Maximum memory allocated so far is "
                f"{torch.cuda.max_memory_allocated() // 1000000}MB"
            )


# --------------------------------------------------------------------------------------------
# One rank's job


def _load_split_cuts(
    data_module: AsrDataModule, params: AttributeDict, splits: List[str], sp: Any, name: str
):
    """The named splits' cuts (lazily concatenated); training cuts are filtered with a report."""
    cuts = data_module.load_cuts(params.cuts_prefix, splits[0])
    for split in splits[1:]:
        cuts = cuts + data_module.load_cuts(params.cuts_prefix, split)
    if name == "training cuts":
        cuts, report = filter_cuts_for_training(
            cuts, sp=sp, name=f"{name} ({', '.join(splits)})", return_report=True
        )
        params.epoch_num_cuts = report.num_kept  # for the progress/ETA of the log lines
    return cuts


def build_optimizer_and_scheduler(params: AttributeDict, model: nn.Module) -> Tuple[Any, Any]:
    """ScaledAdam over the model's parameter groups and the Eden schedule."""
    from icefall_lite.optim import Eden, ScaledAdam, get_parameter_groups_with_lrs

    optimizer = ScaledAdam(
        get_parameter_groups_with_lrs(model, lr=params.base_lr, include_names=True),
        lr=params.base_lr,
        clipping_scale=2.0,
    )
    scheduler = Eden(
        optimizer,
        params.lr_batches,
        params.lr_epochs,
        warmup_batches=params.get("lr_warmup_batches", 500),
    )
    return optimizer, scheduler


def run(rank: int, world_size: int, params: AttributeDict) -> None:
    """The whole training job of one rank.

    Args:
      rank: this process's rank in [0, world_size).
      world_size: number of processes.
      params: flags (``vars(args)``) merged with the recipe's fixed parameters; must name the
        cut manifests with ``manifest_dir``, ``cuts_prefix``, ``train_splits``, ``valid_splits``.
    """
    params = AttributeDict(params)
    params.exp_dir = Path(params.exp_dir)
    params.world_size = world_size  # under torchrun, --world-size is not what counts
    device = choose_device(rank)
    if params.get("num_threads", 0) > 0:
        torch.set_num_threads(params.num_threads)
    elif device.type == "cpu" and world_size > 1:
        # Ranks share the CPU cores: one intra-op pool per rank of cores / ranks threads.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    if world_size > 1:
        setup_dist(
            rank,
            world_size,
            params.master_port,
            use_ddp_launch=params.use_ddp_launch,
            timeout=params.dist_timeout,
        )
    fix_random_seed(params.seed)
    setup_logger(f"{params.exp_dir}/log/log-train")
    logging.info("Training started")
    set_backend(params.get("rnnt_backend", "auto"))
    logging.info(f"Pruned RNN-T loss backend: {resolve_backend(device)}")

    tb_writer = None
    if rank == 0 and params.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        tb_writer = SummaryWriter(log_dir=f"{params.exp_dir}/tensorboard")

    sp = load_bpe_model(params.bpe_model)
    params.blank_id = sp.piece_to_id("<blk>")
    params.sos_id = params.eos_id = sp.piece_to_id("<sos/eos>")
    params.vocab_size = sp.get_piece_size()
    params.env_info = get_env_info()  # save_checkpoint stores it as plain types
    logging.info(f"Device: {device}, world size: {world_size}")
    logging.info(params)

    model = build_model(params)
    num_param = sum(p.numel() for p in model.parameters())
    logging.info(f"Number of model parameters: {num_param}")

    params.run_start_time = time.time()
    params.train_seconds_before_run = 0.0
    params.train_seconds = 0.0
    resume_from = resume_checkpoint_path(params)
    if resume_from is None and params.init_from is not None:
        logging.info(f"Initialising the model from {params.init_from}")
        load_checkpoint(params.init_from, model=model, strict=False)

    model_avg = copy.deepcopy(model).to(torch.float64) if rank == 0 else None
    model.to(device)
    optimizer, scheduler = build_optimizer_and_scheduler(params, model)
    scaler = torch.amp.GradScaler("cuda", enabled=params.use_fp16, init_scale=1.0)

    checkpoint = None
    if resume_from is not None:
        logging.info(f"Resuming from {resume_from}")
        checkpoint = load_checkpoint(
            resume_from,
            model=model,
            model_avg=model_avg,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
        )
        for key in _RESUMED_KEYS:
            params[key] = checkpoint[key]
        # Checkpoints from before the training clock have no train_seconds.
        params.train_seconds_before_run = float(checkpoint.get("train_seconds", 0.0))
        # Whiten probabilities carry over between epochs too, so both resume kinds restore them.
        restore_regulariser_state(model, checkpoint, rank, world_size)
        if params.start_batch > 0:
            params.start_epoch = checkpoint["cur_epoch"]

    if world_size > 1:
        logging.info("Using DDP")
        model = DDP(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )

    data_module = AsrDataModule(params)
    train_cuts = _load_split_cuts(data_module, params, params.train_splits, sp, "training cuts")
    valid_cuts = _load_split_cuts(data_module, params, params.valid_splits, sp, "validation cuts")
    sampler_state = None
    if params.start_batch > 0 and checkpoint is not None and "sampler" in checkpoint:
        sampler_state = checkpoint["sampler"]
    train_dl = data_module.train_dataloaders(
        train_cuts, sampler_state_dict=sampler_state, seed=params.seed
    )
    valid_dl = data_module.valid_dataloaders(valid_cuts)

    if torch.cuda.is_available() and sampler_state is None:
        scan_pessimistic_batches_for_oom(model, train_dl, optimizer, sp, params)

    resume_state = None
    if params.start_batch > 0 and checkpoint is not None:
        resume_state = {
            "rng_states": checkpoint["rng_states"],
            "train_loss_tracker": checkpoint.get("train_loss_tracker", {}),
        }
        if len(resume_state["rng_states"]) != world_size:
            raise ValueError(
                f"--start-batch {params.start_batch}: the checkpoint was written with world size "
                f"{len(resume_state['rng_states'])}, this run has --world-size {world_size}"
            )

    try:
        for epoch in range(params.start_epoch, params.num_epochs + 1):
            scheduler.step_epoch(epoch - 1)
            params.cur_epoch = epoch
            if resume_state is None:
                # Each epoch's randomness depends only on (seed, epoch, rank), so resuming
                # from an epoch checkpoint replays exactly; ranks differ in dropout/SpecAugment.
                fix_random_seed(params.seed + epoch - 1 + 1000003 * rank)
                train_dl.sampler.set_epoch(epoch - 1)
            if tb_writer is not None:
                tb_writer.add_scalar("train/epoch", epoch, params.batch_idx_train)

            train_one_epoch(
                params=params,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                sp=sp,
                train_dl=train_dl,
                valid_dl=valid_dl,
                scaler=scaler,
                model_avg=model_avg,
                tb_writer=tb_writer,
                world_size=world_size,
                rank=rank,
                resume_state=resume_state,
            )
            resume_state = None
            _validate_and_log(params, model, sp, valid_dl, tb_writer, world_size)
            rng_states, regulariser_states = _gather_rank_states(model, world_size)
            save_epoch_checkpoint(
                params,
                model,
                model_avg,
                optimizer,
                scheduler,
                scaler,
                train_dl.sampler,
                rng_states,
                rank,
                regulariser_states,
            )
            logging.info(
                f"Epoch {epoch} done: train loss {params.train_loss:.4g}, valid loss "
                f"{params.valid_loss:.4g} (best valid {params.best_valid_loss:.4g} at epoch "
                f"{params.best_valid_epoch})"
            )
        logging.info(
            f"Done! Training wall time: {_format_minutes(params.get('train_seconds', 0.0))}"
        )
    finally:
        if tb_writer is not None:
            tb_writer.close()
        if world_size > 1:
            cleanup_dist()


def train(
    params: AttributeDict,
    cuts_prefix: str,
    train_splits: List[str],
    valid_splits: List[str],
) -> None:
    """Entry point of a recipe's ``main()``: checks the flags and starts the rank processes.

    ``--world-size`` processes are spawned (Gloo on CPU, NCCL on GPUs); under torchrun this
    process is one rank (see :func:`icefall_lite.dist.launch`).

    Args:
      params: the recipe's fixed parameters updated with the parsed flags.
      cuts_prefix: dataset name in the cut manifests, e.g. ``synth`` or ``librispeech``.
      train_splits: splits trained on, concatenated, e.g. ``["train"]``.
      valid_splits: splits validated on, e.g. ``["dev-clean", "dev-other"]``.
    """
    params.cuts_prefix = cuts_prefix
    params.train_splits = list(train_splits)
    params.valid_splits = list(valid_splits)
    try:
        check_training_arguments(params)
    except (ValueError, FileNotFoundError) as error:
        # A bad flag is the user's mistake, not a crash: one line, no traceback.
        raise SystemExit(f"error: {error}") from None
    launch(run, params, params.world_size)
