"""Training checkpoints: what an exact resume needs, under icefall's file names.

``<exp-dir>/checkpoint-<batch>.pt`` every ``--save-every-n`` steps (the last ``--keep-last-k``
kept), ``epoch-N.pt`` at each epoch end, copied to ``best-train-loss.pt`` /
``best-valid-loss.pt`` when best. Each is :func:`icefall_lite.checkpoint.save_checkpoint`'s dict
(model, model_avg, optimizer, scheduler, grad_scaler, sampler, rng_state and every entry of
``params`` at the top level) plus ``rng_states`` and ``regulariser_states`` (every rank's, in rank
order) and ``train_loss_tracker`` (the running loss; empty in epoch checkpoints) and, with
``--ema``, ``ema_state`` (decay and weights).
"""

import logging
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from torch import nn

from icefall_lite.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    remove_checkpoints,
    save_checkpoint,
)
from icefall_lite.training.state import TrainingState, gather_rank_states, restore_regulariser_state
from icefall_lite.utils import AttributeDict, MetricsTracker, atomic_open

__all__ = [
    "RESUMED_KEYS",
    "init_model_from",
    "restore_training_state",
    "resume_checkpoint_path",
    "save_epoch_checkpoint",
    "save_mid_epoch_checkpoint",
    "save_training_checkpoint",
]

# Bookkeeping values a resumed run takes over from the checkpoint.
RESUMED_KEYS = (
    "best_train_epoch",
    "best_valid_epoch",
    "batch_idx_train",
    "best_train_loss",
    "best_valid_loss",
)


def save_training_checkpoint(
    filename: Union[str, Path],
    state: TrainingState,
    rng_states: List[Dict[str, Any]],
    regulariser_states: List[Dict[str, float]],
    train_loss_tracker: Optional[MetricsTracker] = None,
) -> None:
    """Write everything an exact resume needs (rank 0 writes; others return).

    ``rng_states`` and ``regulariser_states`` hold every rank's state in rank order
    (from :func:`gather_rank_states`, called on all ranks).
    """
    if state.rank != 0:
        return
    # Every rank's RNG states (save_checkpoint's own "rng_state" is rank 0's only) and
    # regulariser states (outside the model's state_dict, whose format averaging and export
    # rely on); params are stored as plain types by save_checkpoint.
    extra = dict(state.params)
    extra["rng_states"] = rng_states
    extra["regulariser_states"] = regulariser_states
    extra["train_loss_tracker"] = dict(train_loss_tracker) if train_loss_tracker else {}
    if state.ema is not None:
        extra["ema_state"] = state.ema.state_dict()
    save_checkpoint(
        filename,
        model=state.bare_model,
        model_avg=state.model_avg,
        params=extra,
        optimizer=state.optimizer,
        scheduler=state.scheduler,
        scaler=state.scaler,
        sampler=state.sampler,
        rank=state.rank,
    )


def save_mid_epoch_checkpoint(state: TrainingState) -> None:
    """``checkpoint-<batch_idx_train>.pt`` with the running loss; old ones beyond
    ``--keep-last-k`` are removed. Call on every rank (the rank states are gathered)."""
    params = state.params
    rng_states, regulariser_states = gather_rank_states(state)
    filename = Path(params.exp_dir) / f"checkpoint-{params.batch_idx_train}.pt"
    save_training_checkpoint(filename, state, rng_states, regulariser_states, state.tot_loss)
    remove_checkpoints(out_dir=params.exp_dir, topk=params.keep_last_k, rank=state.rank)


def _copy_atomically(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a uniquely named temporary file beside ``dst``."""
    with atomic_open(dst, "wb") as f, open(src, "rb") as source:
        shutil.copyfileobj(source, f)


def save_epoch_checkpoint(
    state: TrainingState,
    rng_states: List[Dict[str, Any]],
    regulariser_states: List[Dict[str, float]],
) -> None:
    """``epoch-N.pt``, copied to ``best-train-loss.pt`` / ``best-valid-loss.pt`` when best."""
    if state.rank != 0:
        return
    params = state.params
    exp_dir = Path(params.exp_dir)
    filename = exp_dir / f"epoch-{params.cur_epoch}.pt"
    save_training_checkpoint(filename, state, rng_states, regulariser_states)
    if params.best_train_epoch == params.cur_epoch:
        _copy_atomically(filename, exp_dir / "best-train-loss.pt")
    if params.best_valid_epoch == params.cur_epoch:
        _copy_atomically(filename, exp_dir / "best-valid-loss.pt")


def init_model_from(model: nn.Module, filename: Union[str, Path], allow_missing: bool) -> None:
    """``--init-from``: load another run's weights into ``model`` (fine-tuning).

    Every tensor of ``model`` must be in the file unless ``allow_missing``
    (``--init-from-allow-missing 1``): tensors left at random initialisation are otherwise a
    silent mistake (the wrong file, or another architecture). Names only the file has are
    logged and ignored. A tensor of another shape is always an error.

    Raises:
      CheckpointError naming the file, the count and the first missing names.
    """
    logging.info(f"Initialising the model from {filename}")
    state = read_checkpoint(filename).get("model")
    if state is None:
        raise CheckpointError(f"--init-from {filename}: checkpoint has no 'model' entry")
    if state and all(name.startswith("module.") for name in state):
        state = {name[len("module.") :]: value for name, value in state.items()}
    own = model.state_dict()
    missing = [name for name in own if name not in state]
    if missing and not allow_missing:
        raise CheckpointError(
            f"--init-from {filename}: {len(missing)} of the model's {len(own)} tensors are not "
            f"in it (e.g. {', '.join(missing[:3])}); pass --init-from-allow-missing 1 to train "
            "those from random initialisation"
        )
    load_checkpoint(filename, model=model, strict=False)
    if missing:
        logging.warning(
            f"--init-from {filename}: {len(missing)} tensors start from random initialisation "
            "(--init-from-allow-missing 1)"
        )


def resume_checkpoint_path(params: AttributeDict) -> Optional[Path]:
    """The checkpoint ``--start-batch`` / ``--start-epoch`` ask to resume from, if any."""
    exp_dir = Path(params.exp_dir)
    if params.start_batch > 0:
        return exp_dir / f"checkpoint-{params.start_batch}.pt"
    if params.start_epoch > 1:
        return exp_dir / f"epoch-{params.start_epoch - 1}.pt"
    return None


def restore_training_state(state: TrainingState, filename: Union[str, Path]) -> Dict[str, Any]:
    """Load a training checkpoint into ``state`` (model not yet DDP-wrapped): weights, average,
    optimizer, scheduler, grad scaler, the counters of :data:`RESUMED_KEYS`, the training clock
    and this rank's regulariser state; a mid-epoch resume (``--start-batch``) also takes the
    checkpoint's epoch. Returns the checkpoint (its sampler and RNG states are used later)."""
    params = state.params
    logging.info(f"Resuming from {filename}")
    checkpoint = load_checkpoint(
        filename,
        model=state.model,
        model_avg=state.model_avg,
        optimizer=state.optimizer,
        scheduler=state.scheduler,
        scaler=state.scaler,
    )
    for key in RESUMED_KEYS:
        params[key] = checkpoint[key]
    if state.ema is not None:
        if "ema_state" in checkpoint:
            state.ema.load_state_dict(checkpoint["ema_state"])
        else:
            logging.warning(f"{filename} has no EMA weights: --ema starts from the loaded model")
            state.ema.load_state_dict(
                {"decay": state.ema.decay, "num_updates": 0, "model": state.model.state_dict()}
            )
    # Checkpoints from before the training clock have no train_seconds.
    params.train_seconds_before_run = float(checkpoint.get("train_seconds", 0.0))
    # Whiten probabilities carry over between epochs too, so both resume kinds restore them.
    restore_regulariser_state(state.model, checkpoint, state.rank, state.world_size)
    if params.start_batch > 0:
        params.start_epoch = checkpoint["cur_epoch"]
    return checkpoint
