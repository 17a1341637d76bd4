"""One epoch of training: gradient accumulation, mixed precision, non-finite step skipping, the
running model average, mid-epoch checkpoints, logging, TensorBoard and periodic validation.

Everything travels in one :class:`~icefall_lite.training.state.TrainingState`;
:func:`train_one_epoch` keeps icefall's keyword arguments for callers that hold the pieces
separately.
"""

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from icefall_lite.checkpoint import restore_rng_state, update_averaged_model
from icefall_lite.dist import min_over_ranks
from icefall_lite.errors import UsageError
from icefall_lite.models.interface import set_batch_count
from icefall_lite.training.checkpoints import save_mid_epoch_checkpoint
from icefall_lite.training.loss import batch_cut_ids, compute_loss, compute_validation_loss
from icefall_lite.training.state import TrainingState, adjusted_batch_count
from icefall_lite.utils import AttributeDict, MetricsTracker

__all__ = [
    "NonFiniteLossError",
    "format_minutes",
    "train_epoch",
    "train_one_epoch",
    "training_progress",
    "validate_and_log",
]


class NonFiniteLossError(RuntimeError):
    """Raised when too many consecutive batches gave a non-finite loss or gradient."""


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
    """icefall's ``train_one_epoch``: :func:`train_epoch` on a state made of these pieces
    (``params`` is updated in place; the sampler is ``train_dl.sampler`` if it has one)."""
    state = TrainingState(
        params=params,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        model_avg=model_avg,
        sampler=getattr(train_dl, "sampler", None),
        sp=sp,
        tb_writer=tb_writer,
        rank=rank,
        world_size=world_size,
    )
    train_epoch(state, train_dl, valid_dl, resume_state)


@dataclass
class _Window:
    """The batches of one accumulation window (``--accum-grad`` batches make one step)."""

    info: MetricsTracker = field(default_factory=MetricsTracker)
    size: int = 0
    finite: bool = True
    bad_cuts: List[str] = field(default_factory=list)

    def add(self, loss_info: MetricsTracker, batch: Dict[str, Any]) -> None:
        self.size += 1
        if math.isfinite(loss_info["loss"]):
            self.info = self.info + loss_info
        else:
            self.finite = False
            self.bad_cuts.extend(batch_cut_ids(batch))


def train_epoch(
    state: TrainingState,
    train_dl: Iterable,
    valid_dl: Optional[Iterable] = None,
    resume_state: Optional[Dict[str, Any]] = None,
) -> None:
    """Train for one epoch (or the rest of one, when resuming mid-epoch).

    Every ``params.accum_grad`` batches make one optimizer step. A step whose loss (on any rank)
    or gradient is not finite is skipped with a warning naming the cuts; after
    ``params.max_nonfinite_batches`` consecutive skipped steps :class:`NonFiniteLossError` is
    raised (the checkpoints on disk are all from before the trouble). A trailing partial
    accumulation window at the end of the epoch is dropped.

    Args:
      state: the run; ``params.batch_idx_train``, ``train_loss``, ``best_train_*`` and
        ``state.tot_loss`` are updated.
      train_dl: the training batches.
      valid_dl: validation batches for periodic validation (``params.valid_interval``).
      resume_state: ``{"rng_states": [...], "train_loss_tracker": {...}}`` from a mid-epoch
        checkpoint; the RNG states are restored after the data iterator is created.
    """
    params, model = state.params, state.model
    model.train()
    state.tot_loss = MetricsTracker()
    data_iter = iter(train_dl)  # creating the iterator draws from the global RNG
    if resume_state is not None:
        restore_rng_state(resume_state["rng_states"][state.rank])
        state.tot_loss.update(resume_state.get("train_loss_tracker", {}))

    window = _Window()
    num_consecutive_bad = 0
    # Counted from the start of the epoch (a mid-epoch resume starts at 0: the ETA is rough).
    params.epoch_cuts_done = 0
    for batch in data_iter:
        params.epoch_cuts_done += len(batch["supervisions"]["num_frames"])
        set_batch_count(state.bare_model, adjusted_batch_count(params))
        is_last_in_window = window.size + 1 == params.accum_grad
        loss, loss_info = compute_loss(params, model, state.sp, batch, is_training=True)
        sync_context = (
            model.no_sync()
            if isinstance(model, DDP) and not is_last_in_window
            else contextlib.nullcontext()
        )
        with sync_context:
            # Backward even on a non-finite loss: every DDP rank must take part in the
            # gradient all-reduce; the step is dropped below if anything is not finite.
            state.scaler.scale(loss).backward()
        window.add(loss_info, batch)
        if not is_last_in_window:
            continue
        if _step(state, window):
            num_consecutive_bad = 0
            _after_step(state, window.info, valid_dl)
        else:
            num_consecutive_bad += 1
            _check_bad_steps(params, num_consecutive_bad)
        window = _Window()

    if resume_state is None and params.epoch_cuts_done == 0:
        # Otherwise every epoch "trains" on nothing and saves an untrained model.
        raise UsageError(_no_batch_message(params))
    if window.size > 0:
        logging.info(
            f"Epoch {params.cur_epoch}: dropping the last {window.size} batch(es), fewer than "
            f"--accum-grad {params.accum_grad}"
        )
        state.optimizer.zero_grad()
    _end_epoch_train_loss(params, state.tot_loss)


def _no_batch_message(params: AttributeDict) -> str:
    """Why an epoch can yield no batch, and the flags that fix it."""
    where = params.get("shar_dir") or params.get("manifest_dir") or "the training cuts"
    splits = ",".join(params.get("train_splits") or ["train"])
    text = (
        f"epoch {params.get('cur_epoch', '?')}: the training cuts ({where}, splits {splits}) "
        f"gave no batch of --max-duration {params.get('max_duration')} s"
    )
    if params.get("drop_last", False):
        buckets = (
            f" in each of --num-buckets {params.get('num_buckets')} duration buckets"
            if params.get("bucketing_sampler", False)
            else ""
        )
        text += (
            f": with --drop-last true only full batches are kept{buckets}; use more training "
            "cuts, or a smaller --max-duration, fewer --num-buckets, --bucketing-sampler false "
            "or --drop-last false"
        )
    else:
        text += ": check that the training cut files are not empty and that the duration "
        text += "filters keep some cuts"
    return text


def _all_ranks_true(flag: bool, device: torch.device, world_size: int) -> bool:
    return bool(min_over_ranks(int(flag), device, world_size))


def _grads_are_finite(model: nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([g.detach().float().abs().sum() for g in grads]).isfinite().all())


def _step(state: TrainingState, window: _Window) -> bool:
    """Take the optimizer step of a full window, or drop it (with a warning) when its loss on
    any rank or its gradient is not finite. Returns whether the step was taken."""
    params = state.params
    step_ok = _all_ranks_true(window.finite, state.device, state.world_size)
    # With fp16 the grad scaler owns inf/nan gradients (it skips and lowers the scale).
    if step_ok and not params.use_fp16:
        step_ok = _grads_are_finite(state.model)
    if not step_ok:
        state.optimizer.zero_grad()
        logging.warning(
            f"Non-finite loss or gradient at step {params.batch_idx_train + 1} (epoch "
            f"{params.cur_epoch}); skipping it. Cuts on rank {state.rank}: "
            f"{window.bad_cuts or 'none bad here (another rank or the gradient)'}"
        )
        return False
    params.batch_idx_train += 1
    state.scheduler.step_batch(params.batch_idx_train)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.optimizer.zero_grad()
    if state.ema is not None:
        state.ema.update(state.bare_model)
    state.tot_loss = (state.tot_loss * (1 - 1 / params.reset_interval)) + window.info
    return True


def _check_bad_steps(params: AttributeDict, num_consecutive_bad: int) -> None:
    if num_consecutive_bad >= params.max_nonfinite_batches:
        raise NonFiniteLossError(
            f"{num_consecutive_bad} consecutive steps had a non-finite loss or gradient; "
            f"stopping. The last good checkpoint in {params.exp_dir} is intact; try a "
            f"lower --base-lr, check the cuts named above, or use --use-fp16 0"
        )


def _end_epoch_train_loss(params: AttributeDict, tot_loss: MetricsTracker) -> None:
    frames = tot_loss["frames"]
    params.train_loss = tot_loss["loss"] / frames if frames > 0 else float("inf")
    if params.train_loss < params.best_train_loss:
        params.best_train_epoch = params.cur_epoch
        params.best_train_loss = params.train_loss


def format_minutes(seconds: float) -> str:
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
    eta = format_minutes(run_seconds / done_in_run * left) if done_in_run > 0 else "?"
    return (
        f"epoch {params.cur_epoch}/{params.num_epochs} ({100 * epoch_fraction:.0f}%), "
        f"elapsed {format_minutes(params.train_seconds)}, ETA {eta}"
    )


def _after_step(
    state: TrainingState, step_info: MetricsTracker, valid_dl: Optional[Iterable]
) -> None:
    """Averaging, checkpointing, grad-scale care, logging and validation after a step."""
    params = state.params
    step = params.batch_idx_train
    # Training wall time so far, stored in every checkpoint (WER-vs-training-time curves).
    if "run_start_time" in params:  # set by run(); absent when a test drives the loop
        params.train_seconds = (
            params.get("train_seconds_before_run", 0.0) + time.time() - params.run_start_time
        )
    if state.rank == 0 and state.model_avg is not None and step % params.average_period == 0:
        update_averaged_model(params=params, model_cur=state.bare_model, model_avg=state.model_avg)
    if params.save_every_n > 0 and step % params.save_every_n == 0:
        save_mid_epoch_checkpoint(state)
    if params.use_fp16 and step % 100 == 0:
        _tend_grad_scale(state.scaler, step, params.exp_dir)
    if step % params.log_interval == 0:
        _log_step(state, step_info)
    if valid_dl is not None and params.valid_interval > 0 and step % params.valid_interval == 0:
        validate_and_log(state, valid_dl)


def _log_step(state: TrainingState, step_info: MetricsTracker) -> None:
    params, tot_loss, tb_writer = state.params, state.tot_loss, state.tb_writer
    step = params.batch_idx_train
    cur_lr = max(state.scheduler.get_last_lr())
    grad_scale = state.scaler.get_scale() if params.use_fp16 else 1.0
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


def validate_and_log(state: TrainingState, valid_dl: Iterable) -> None:
    """Validation loss (see :func:`compute_validation_loss`), logged and sent to TensorBoard."""
    params = state.params
    logging.info("Computing validation loss")
    valid_info = compute_validation_loss(
        params, state.validation_model, state.sp, valid_dl, state.world_size
    )
    logging.info(f"Epoch {params.cur_epoch}, validation: {valid_info}")
    if torch.cuda.is_available():
        max_mb = torch.cuda.max_memory_allocated() // 1000000
        logging.info(f"Maximum memory allocated so far is {max_mb}MB")
    if state.tb_writer is not None:
        for key, value in valid_info.norm_items():
            state.tb_writer.add_scalar(f"train/valid_{key}", value, params.batch_idx_train)


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
