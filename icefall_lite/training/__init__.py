"""The transducer/CTC training every recipe's ``train.py`` shares.

* :mod:`~icefall_lite.training.flags`: ``add_training_arguments``, ``get_training_params``,
  ``check_training_arguments``;
* :mod:`~icefall_lite.training.state`: :class:`TrainingState`, the one object the run passes
  around (model, averaged model, optimizer, scheduler, scaler, sampler, running loss; the
  counters live in its ``params``), and the RNG / regulariser state helpers;
* :mod:`~icefall_lite.training.loss`: one batch -> loss (simple/pruned warm-up) and metrics;
  the validation loss;
* :mod:`~icefall_lite.training.loop`: one epoch (accumulation, mixed precision, non-finite step
  skipping, model average, mid-epoch checkpoints, logging, periodic validation);
* :mod:`~icefall_lite.training.checkpoints`: training checkpoints and resuming from them;
* :mod:`~icefall_lite.training.run`: one rank's job and :func:`train`, a recipe's entry point.

Files written under ``--exp-dir`` follow icefall: ``epoch-N.pt``, ``checkpoint-<batch>.pt``,
``best-train-loss.pt``, ``best-valid-loss.pt``, ``log/log-train-*``, ``tensorboard/``.

Exact resume: a checkpoint holds, besides model/average/optimizer/scheduler/scaler, the sampler
position, every rank's RNG states and adaptive regulariser state (``Whiten`` probabilities, kept
out of the model's ``state_dict``) and the running loss tracker. Resuming with ``--start-batch``
(or ``--start-epoch``) restores them so that, on CPU with ``--num-workers 0``, the final
parameters are bit-identical to those of an unbroken run.
"""

from icefall_lite.models.interface import set_batch_count
from icefall_lite.training.checkpoints import _copy_atomically  # noqa: F401 (a test uses it)
from icefall_lite.training.checkpoints import (
    RESUMED_KEYS,
    restore_training_state,
    resume_checkpoint_path,
    save_epoch_checkpoint,
    save_mid_epoch_checkpoint,
    save_training_checkpoint,
)
from icefall_lite.training.flags import (
    HelpFormatter,
    add_training_arguments,
    check_training_arguments,
    get_training_params,
)
from icefall_lite.training.loop import (
    NonFiniteLossError,
    train_epoch,
    train_one_epoch,
    training_progress,
)
from icefall_lite.training.loss import compute_loss, compute_validation_loss
from icefall_lite.training.run import (
    build_optimizer_and_scheduler,
    run,
    scan_pessimistic_batches_for_oom,
    train,
)
from icefall_lite.training.state import (
    TrainingState,
    adjusted_batch_count,
    fix_random_seed,
    gather_rank_states,
    preserved_rng_state,
    restore_regulariser_state,
)

__all__ = [
    "HelpFormatter",
    "NonFiniteLossError",
    "RESUMED_KEYS",
    "TrainingState",
    "add_training_arguments",
    "adjusted_batch_count",
    "build_optimizer_and_scheduler",
    "check_training_arguments",
    "compute_loss",
    "compute_validation_loss",
    "fix_random_seed",
    "gather_rank_states",
    "get_training_params",
    "preserved_rng_state",
    "restore_regulariser_state",
    "restore_training_state",
    "resume_checkpoint_path",
    "run",
    "save_epoch_checkpoint",
    "save_mid_epoch_checkpoint",
    "save_training_checkpoint",
    "scan_pessimistic_batches_for_oom",
    "set_batch_count",
    "train",
    "train_epoch",
    "train_one_epoch",
    "training_progress",
]
