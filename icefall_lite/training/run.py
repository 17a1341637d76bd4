"""One rank's whole training job, and the entry point a recipe's ``main()`` calls.

:func:`train` checks the flags and starts ``--world-size`` processes (or is one rank under
torchrun); each runs :func:`run`: process set-up, the :class:`TrainingState` (model, average,
optimizer, scheduler, scaler; resumed or ``--init-from``), the data loaders, an OOM scan on
GPU, then the epoch loop writing ``epoch-N.pt`` / ``best-*.pt``.
"""

import copy
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from icefall_lite.checkpoint import remove_stale_temporary_files
from icefall_lite.data import AsrDataModule, filter_cuts_for_training, load_bpe_model
from icefall_lite.data.datamodule import set_augmentation_epoch
from icefall_lite.dist import choose_device, cleanup_dist, launch, min_over_ranks, setup_dist
from icefall_lite.errors import UsageError
from icefall_lite.models import build_model
from icefall_lite.rnnt import resolve_backend, set_backend
from icefall_lite.training.checkpoints import (
    init_model_from,
    restore_training_state,
    resume_checkpoint_path,
    save_epoch_checkpoint,
)
from icefall_lite.training.ema import ModelEma
from icefall_lite.training.flags import (
    check_training_arguments,
    novograd_betas,
    resolve_global_batch,
)
from icefall_lite.training.ipl import InPlaceIpl, start_ipl
from icefall_lite.training.loop import format_minutes, train_epoch, validate_and_log
from icefall_lite.training.loss import compute_loss
from icefall_lite.training.state import TrainingState, fix_random_seed, gather_rank_states
from icefall_lite.utils import AttributeDict, get_env_info, setup_logger

__all__ = ["build_optimizer_and_scheduler", "run", "scan_pessimistic_batches_for_oom", "train"]


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
    except ValueError as error:
        # A bad flag is the user's mistake, not a crash: the script prints one line
        # (icefall_lite/cli/errors.py); FileNotFoundError is printed the same way.
        raise UsageError(str(error)) from None
    launch(run, params, params.world_size)


def run(rank: int, world_size: int, params: AttributeDict) -> None:
    """The whole training job of one rank.

    Args:
      rank: this process's rank in [0, world_size).
      world_size: number of processes.
      params: flags (``vars(args)``) merged with the recipe's fixed parameters; must name the
        cut manifests with ``manifest_dir``, ``cuts_prefix``, ``train_splits``, ``valid_splits``.
    """
    params = AttributeDict(params)
    device = _set_up_process(rank, world_size, params)
    tb_writer = None
    if rank == 0 and params.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        tb_writer = SummaryWriter(log_dir=f"{params.exp_dir}/tensorboard")
    sp = _load_tokenizer(params)
    logging.info(f"Device: {device}, world size: {world_size}")
    logging.info(params)

    state, checkpoint = _build_state(params, rank, world_size, device)
    state.sp, state.tb_writer = sp, tb_writer
    data = _TrainingData(state)
    ipl = start_ipl(state, checkpoint, data.labelled_cuts, data.valid_cuts)
    train_dl, valid_dl, resume_state = _data_loaders(state, checkpoint, data, ipl)
    try:
        for epoch in range(params.start_epoch, params.num_epochs + 1):
            # Labels for this epoch, made at the end of the previous one (not on a mid-epoch
            # resume: the checkpoint's generation, restored by start_ipl, is the epoch's).
            if ipl is not None and resume_state is None and ipl.wants_labels(epoch):
                ipl.label(epoch)
                train_dl = data.train_loader(ipl.training_cuts(data.labelled_cuts), None)
            _train_and_save_epoch(state, epoch, train_dl, valid_dl, resume_state, ipl)
            resume_state = None
        logging.info(
            f"Done! Training wall time: {format_minutes(params.get('train_seconds', 0.0))}"
        )
    finally:
        if tb_writer is not None:
            tb_writer.close()
        if world_size > 1:
            cleanup_dist()


def _set_up_process(rank: int, world_size: int, params: AttributeDict) -> torch.device:
    """Threads, process group, seed, log file and loss backend of this rank; returns its
    device."""
    params.exp_dir = Path(params.exp_dir)
    params.world_size = world_size  # under torchrun, --world-size is not what counts
    resolve_global_batch(params, world_size)
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
    if rank == 0:
        remove_stale_temporary_files(params.exp_dir)  # partial saves of a killed run
    set_backend(params.get("rnnt_backend", "auto"))
    logging.info(f"Pruned RNN-T loss backend: {resolve_backend(device)}")
    return device


def _load_tokenizer(params: AttributeDict) -> Any:
    """The BPE model; sets ``blank_id``, ``sos_id``/``eos_id``, ``vocab_size`` and
    ``env_info`` in ``params``."""
    sp = load_bpe_model(params.bpe_model)
    params.blank_id = sp.piece_to_id("<blk>")
    params.sos_id = params.eos_id = sp.piece_to_id("<sos/eos>")
    params.vocab_size = sp.get_piece_size()
    params.env_info = get_env_info()  # save_checkpoint stores it as plain types
    return sp


def build_optimizer_and_scheduler(params: AttributeDict, model: nn.Module) -> Tuple[Any, Any]:
    """The optimizer (``--optim``: ScaledAdam, AdamW or Novograd) over the model's parameter
    groups, the joint network's learning rate scaled by ``--joint-net-lr-factor``, and the
    schedule (``--lr-schedule``: Eden, warm-up/hold/decay, or warm-up + cosine / polynomial
    decay)."""
    from icefall_lite.optim import (
        Eden,
        Novograd,
        ScaledAdam,
        WarmupDecay,
        WarmupHoldDecay,
        get_parameter_groups_with_lrs,
    )
    from icefall_lite.training.ema import joint_net_lr_factor

    joiner = getattr(model, "joiner", None)
    if joiner is not None:
        factor = joint_net_lr_factor(params.vocab_size, params.get("joint_net_lr_factor"))
        if factor != 1.0:
            logging.info(f"Joint network learning-rate factor: {factor:.4g}")
        # get_parameter_groups_with_lrs applies a module's lr_scale to its whole subtree.
        joiner.lr_scale = factor
    warmup = params.get("lr_warmup_batches", 500)
    optim = params.get("optim", "scaled_adam")
    if optim == "adamw":
        optimizer = torch.optim.AdamW(
            get_parameter_groups_with_lrs(model, lr=params.base_lr),
            lr=params.base_lr,
            weight_decay=params.get("weight_decay", 1e-3),
        )
    elif optim == "novograd":
        optimizer = Novograd(
            get_parameter_groups_with_lrs(model, lr=params.base_lr),
            lr=params.base_lr,
            betas=novograd_betas(params.novograd_betas),
            weight_decay=params.weight_decay,
        )
    else:
        optimizer = ScaledAdam(
            get_parameter_groups_with_lrs(model, lr=params.base_lr, include_names=True),
            lr=params.base_lr,
            clipping_scale=2.0,
        )
    schedule = params.get("lr_schedule", "eden")
    if schedule == "warmup_hold_decay":
        scheduler = WarmupHoldDecay(
            optimizer,
            warmup_steps=params.warmup_steps,
            hold_steps=params.hold_steps,
            half_life_steps=params.half_life_steps,
            min_lr=params.min_lr,
        )
    elif schedule == "eden":
        scheduler = Eden(optimizer, params.lr_batches, params.lr_epochs, warmup_batches=warmup)
    else:
        scheduler = WarmupDecay(
            optimizer,
            # 0: sized to the run once the training cuts are known (size_lr_decay_to_run).
            decay_batches=params.lr_decay_batches or None,
            warmup_batches=warmup,
            kind=schedule,
            min_lr=params.min_lr,
        )
    scheduler.set_cooldown(params.get("num_epochs", 0), params.get("lr_cooldown_epochs", 0.0))
    return optimizer, scheduler


def _build_state(
    params: AttributeDict, rank: int, world_size: int, device: torch.device
) -> Tuple[TrainingState, Optional[Dict[str, Any]]]:
    """Model (``--init-from`` or resumed), average, optimizer, scheduler and scaler; the model
    is DDP-wrapped when world_size > 1. Returns the state and the resume checkpoint, if any."""
    model = build_model(params)
    num_param = sum(p.numel() for p in model.parameters())
    logging.info(f"Number of model parameters: {num_param}")

    params.run_start_time = time.time()
    params.train_seconds_before_run = 0.0
    params.train_seconds = 0.0
    resume_from = resume_checkpoint_path(params)
    if resume_from is None and params.init_from is not None:
        init_model_from(model, params.init_from, params.get("init_from_allow_missing", False))

    model_avg = copy.deepcopy(model).to(torch.float64) if rank == 0 else None
    model.to(device)
    optimizer, scheduler = build_optimizer_and_scheduler(params, model)
    # Every rank keeps the average: validation is shared among the ranks.
    ema = ModelEma(model, params.ema) if params.get("ema", 0.0) > 0 else None
    state = TrainingState(
        params=params,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda", enabled=params.use_fp16, init_scale=1.0),
        model_avg=model_avg,
        ema=ema,
        rank=rank,
        world_size=world_size,
    )
    checkpoint = None
    if resume_from is not None:
        checkpoint = restore_training_state(state, resume_from)
    if world_size > 1:
        logging.info("Using DDP")
        state.model = DDP(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    return state, checkpoint


class _TrainingData:
    """The data module and the run's cut sets: labelled training cuts (unfiltered, lazy) and
    validation cuts; builds the training loader over whatever training cuts an epoch uses."""

    def __init__(self, state: TrainingState) -> None:
        params = state.params
        self.state = state
        self.module = AsrDataModule(params)
        self.labelled_cuts = self.module.train_cuts(params.cuts_prefix, params.train_splits)
        self.valid_cuts = self.module.load_splits(params.cuts_prefix, params.valid_splits)

    def train_loader(self, cuts: Any, sampler_state: Optional[Dict[str, Any]]) -> Any:
        """The training loader over ``cuts``, filtered with a report (too short for their
        tokens after the model's subsampling, too long, untokenizable)."""
        state, params = self.state, self.state.params
        cuts, report = filter_cuts_for_training(
            cuts,
            sp=state.sp,
            name=f"training cuts ({', '.join(params.train_splits)})",
            return_report=True,
            subsampling=state.bare_model.output_frames,
        )
        # For the progress/ETA of the log lines, which count this rank's cuts: each of the
        # world_size ranks' samplers yields about 1 / world_size of them per epoch.
        params.epoch_num_cuts = report.num_kept / max(1, params.get("world_size", 1))
        train_dl = self.module.train_dataloaders(
            cuts, sampler_state_dict=sampler_state, seed=params.seed
        )
        self.filtered_cuts = cuts
        state.sampler = train_dl.sampler
        return train_dl

    def fresh_sampler(self) -> Any:
        """A new sampler like the last training loader's (at its start), for counting batches
        without touching the one training uses."""
        seed = self.state.params.seed
        return self.module.train_dataloaders(self.filtered_cuts, seed=seed).sampler


def _data_loaders(
    state: TrainingState,
    checkpoint: Optional[Dict[str, Any]],
    data: _TrainingData,
    ipl: Optional[InPlaceIpl] = None,
) -> Tuple[Any, Any, Optional[Dict[str, Any]]]:
    """Training and validation loaders (the sampler restored on a mid-epoch resume; the
    training cuts include the pseudo-labelled ones of the restored cache), the OOM scan on
    GPU, and the RNG / running-loss state a mid-epoch resume continues from."""
    params, sp = state.params, state.sp
    sampler_state = None
    if params.start_batch > 0 and checkpoint is not None and "sampler" in checkpoint:
        sampler_state = checkpoint["sampler"]
    train_cuts = data.labelled_cuts if ipl is None else ipl.training_cuts(data.labelled_cuts)
    train_dl = data.train_loader(train_cuts, sampler_state)
    valid_dl = data.module.valid_dataloaders(data.valid_cuts)
    size_lr_decay_to_run(state, data.fresh_sampler)

    if torch.cuda.is_available() and sampler_state is None:
        scan_pessimistic_batches_for_oom(state.model, train_dl, state.optimizer, sp, params)

    resume_state = None
    if params.start_batch > 0 and checkpoint is not None:
        resume_state = {
            "rng_states": checkpoint["rng_states"],
            "train_loss_tracker": checkpoint.get("train_loss_tracker", {}),
        }
        if len(resume_state["rng_states"]) != state.world_size:
            raise ValueError(
                f"--start-batch {params.start_batch}: the checkpoint was written with world size "
                f"{len(resume_state['rng_states'])}, this run has --world-size {state.world_size}"
            )
    return train_dl, valid_dl, resume_state


def size_lr_decay_to_run(state: TrainingState, make_sampler: Callable[[], Any]) -> None:
    """``--lr-decay-batches 0`` with a cosine/poly schedule: reach ``--min-lr`` at the end of
    ``--num-epochs``. A resumed run keeps the length its checkpoint saved; otherwise the
    batches of one epoch are counted on a fresh sampler (``make_sampler()``, iterated for
    epoch 0; cuts only, no features are read) and multiplied by the epochs, then divided by
    ``--accum-grad`` (the schedule counts optimizer steps). Under DDP every rank takes the
    smallest rank's count, so all ranks keep one learning rate. Epochs differ by a few batches
    (shuffled buckets), so the floor is reached within about a percent of the end."""
    from icefall_lite.optim import WarmupDecay

    scheduler, params = state.scheduler, state.params
    # Set already: by the flag, or restored from the checkpoint of the run being resumed.
    if not isinstance(scheduler, WarmupDecay) or scheduler.decay_batches is not None:
        return
    sampler = make_sampler()
    sampler.set_epoch(0)
    epoch_batches = sum(1 for _ in sampler)
    epoch_batches = min_over_ranks(epoch_batches, state.device, state.world_size)
    accum = max(1, params.get("accum_grad", 1))
    steps = epoch_batches * params.num_epochs // accum
    if steps <= scheduler.warmup_batches:
        raise UsageError(
            f"--lr-decay-batches 0: the run has only {steps} optimizer steps ({epoch_batches} "
            f"batches per epoch x --num-epochs {params.num_epochs}), not more than the "
            f"{scheduler.warmup_batches} of warm-up; set --lr-decay-batches or train longer"
        )
    scheduler.set_decay_batches(steps)
    logging.info(
        f"--lr-decay-batches 0: {epoch_batches} batches per epoch x {params.num_epochs} epochs"
        f" / accum-grad {accum} = {steps} steps to --min-lr"
    )


def _train_and_save_epoch(
    state: TrainingState,
    epoch: int,
    train_dl: Any,
    valid_dl: Any,
    resume_state: Optional[Dict[str, Any]],
    ipl: Optional[InPlaceIpl] = None,
) -> None:
    """One epoch (the rest of one when ``resume_state`` is given), validation, ``epoch-N.pt``
    (which records the validation loss for ``--ipl-average``)."""
    params = state.params
    state.scheduler.step_epoch(epoch - 1)
    params.cur_epoch = epoch
    set_augmentation_epoch(train_dl, epoch)
    if resume_state is None:
        # Each epoch's randomness depends only on (seed, epoch, rank), so resuming from an
        # epoch checkpoint replays exactly; ranks differ in dropout/SpecAugment.
        fix_random_seed(params.seed + epoch - 1 + 1000003 * state.rank)
        train_dl.sampler.set_epoch(epoch - 1)
    if state.tb_writer is not None:
        state.tb_writer.add_scalar("train/epoch", epoch, params.batch_idx_train)

    train_epoch(state, train_dl, valid_dl, resume_state)
    validate_and_log(state, valid_dl)
    if ipl is not None:
        ipl.note_validation(epoch, params.valid_loss)
    rng_states, regulariser_states = gather_rank_states(state)
    save_epoch_checkpoint(state, rng_states, regulariser_states)
    logging.info(
        f"Epoch {epoch} done: train loss {params.train_loss:.4g}, valid loss "
        f"{params.valid_loss:.4g} (best valid {params.best_valid_loss:.4g} at epoch "
        f"{params.best_valid_epoch})"
    )


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
