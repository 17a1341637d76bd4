"""The one object a training run passes around, and the random/regulariser state it carries.

:class:`TrainingState` holds what one rank's run changes (model, averaged model, optimizer,
scheduler, grad scaler, sampler, running loss) and ``params``, which keeps the run's counters
(``batch_idx_train``, ``cur_epoch``, ``best_train_*``, ``best_valid_*``, ``train_loss``,
``valid_loss``, ``train_seconds``) beside the flags: icefall's convention, and what every
checkpoint stores at its top level.
"""

import contextlib
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from icefall_lite.checkpoint import capture_rng_state, restore_rng_state
from icefall_lite.models.interface import get_regulariser_state, set_regulariser_state
from icefall_lite.utils import AttributeDict, MetricsTracker

__all__ = [
    "TrainingState",
    "adjusted_batch_count",
    "fix_random_seed",
    "gather_rank_states",
    "preserved_rng_state",
    "restore_regulariser_state",
    "unwrap",
]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, DDP) else model


@dataclass
class TrainingState:
    """Everything one rank's training run reads and changes.

    Attributes:
      params: flags + fixed parameters + the run's counters (see the module docstring).
      model: the model being trained, possibly DDP-wrapped, on its device.
      optimizer, scheduler: e.g. ScaledAdam and Eden (``step_batch``, ``step_epoch``,
        ``get_last_lr``).
      scaler: ``torch.amp.GradScaler`` (enabled only with ``--use-fp16``).
      model_avg: running float64 average of the model (rank 0 only), or None.
      ema: exponential moving average of the weights (``--ema``; every rank), or None.
      sampler: the training sampler, whose position mid-epoch checkpoints save (or None).
      sp: tokenizer with ``encode(texts, out_type=int)``.
      tb_writer: TensorBoard ``SummaryWriter`` (rank 0 only), or None.
      rank, world_size: this process's rank and the number of processes.
      tot_loss: the current epoch's running loss (saved in mid-epoch checkpoints).
    """

    params: AttributeDict
    model: nn.Module
    optimizer: Any = None
    scheduler: Any = None
    scaler: Any = None
    model_avg: Optional[nn.Module] = None
    ema: Any = None
    sampler: Any = None
    sp: Any = None
    tb_writer: Any = None
    rank: int = 0
    world_size: int = 1
    tot_loss: MetricsTracker = field(default_factory=MetricsTracker)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def bare_model(self) -> nn.Module:
        """The model without its DDP wrapper."""
        return unwrap(self.model)

    @property
    def validation_model(self) -> nn.Module:
        """What validation runs: the EMA weights with ``--ema``, else the model."""
        return self.ema.module if self.ema is not None else self.model


def adjusted_batch_count(params: AttributeDict) -> float:
    """Optimizer steps rescaled to ``--ref-duration`` seconds of audio per step.

    The Zipformer's internal schedules (dropout, skip rates, balancer limits) are written for
    icefall's reference batch size; a run with smaller batches sees proportionally fewer steps.
    """
    seconds_per_step = params.max_duration * params.world_size * params.accum_grad
    return params.batch_idx_train * seconds_per_step / params.ref_duration


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


def gather_rank_states(
    state: TrainingState,
) -> Tuple[List[Dict[str, Any]], List[Dict[str, float]]]:
    """Every rank's RNG states and adaptive regulariser state (see ``get_regulariser_state``;
    ranks differ, each adapts on its own batches), in rank order: one collective call when
    world_size > 1, made on all ranks.

    Returns:
      (rng_states, regulariser_states), each a list of world_size dicts.
    """
    mine = {"rng": capture_rng_state(), "regulariser": get_regulariser_state(state.bare_model)}
    world_size = state.world_size
    gathered: List[Any] = [mine] if world_size == 1 else [None] * world_size
    if world_size > 1:
        dist.all_gather_object(gathered, mine)
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
    set_regulariser_state(unwrap(model), state)
