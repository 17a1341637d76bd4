"""Distributed training set-up: one machine through ``--world-size N`` (torch.multiprocessing
spawn, rendezvous on ``localhost:--master-port``) or several through ``torchrun`` (``env://``,
RANK / WORLD_SIZE / LOCAL_RANK read from the environment).

NCCL is used when CUDA is available, Gloo otherwise. Every process group gets a timeout, so
when one rank dies or hangs the others fail with an error instead of waiting forever.

Recipe usage (icefall's)::

    def run(rank: int, world_size: int, args) -> None:
        setup_dist(rank, world_size, args.master_port, args.use_ddp_launch,
                   timeout=args.dist_timeout)
        device = choose_device(rank)
        ...
        cleanup_dist()

    launch(run, args, args.world_size)
"""

import argparse
import logging
import os
from datetime import timedelta
from typing import Any, Callable, Optional, Union

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from icefall_lite.errors import USER_ERRORS, UsageError, debug_from_env
from icefall_lite.utils import str2bool

__all__ = [
    "DEFAULT_MASTER_PORT",
    "DEFAULT_TIMEOUT_S",
    "add_dist_arguments",
    "choose_device",
    "cleanup_dist",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "is_torchrun",
    "launch",
    "min_over_ranks",
    "setup_dist",
]

DEFAULT_MASTER_PORT = 12354
# Long enough for rank 0 to write a checkpoint or finish validation while the others wait at
# the next collective; short enough that a dead rank is noticed within minutes.
DEFAULT_TIMEOUT_S = 600.0


def is_torchrun() -> bool:
    """True when this process was started by ``torchrun`` (torch.distributed.run)."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return True
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))


def _as_timedelta(timeout: Union[float, timedelta]) -> timedelta:
    if isinstance(timeout, timedelta):
        return timeout
    if timeout <= 0:
        raise ValueError(f"--dist-timeout must be > 0 seconds, got {timeout}")
    return timedelta(seconds=timeout)


def setup_dist(
    rank: int,
    world_size: int,
    master_port: Optional[int] = None,
    use_ddp_launch: bool = False,
    timeout: Union[float, timedelta] = DEFAULT_TIMEOUT_S,
    backend: Optional[str] = None,
) -> None:
    """Join the default process group.

    Args:
      rank: this process's global rank (ignored with ``use_ddp_launch``: read from env).
      world_size: number of processes (ignored with ``use_ddp_launch``).
      master_port: rendezvous port on localhost for spawned processes; default
        ``$MASTER_PORT`` or 12354.
      use_ddp_launch: started by torchrun: rendezvous through ``env://``.
      timeout: seconds (or timedelta) a collective may wait for the other ranks before
        failing.
      backend: ``nccl``/``gloo``; default NCCL with CUDA, else Gloo.
    """
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    timeout = _as_timedelta(timeout)
    if backend == "nccl":
        # Let NCCL's watchdog abort a timed-out collective (otherwise it may block for ever).
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")

    if use_ddp_launch:
        missing = [
            k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
        ]
        if missing:
            raise RuntimeError(
                f"--use-ddp-launch true: env lacks {missing}; start the script with torchrun"
            )
        dist.init_process_group(backend, init_method="env://", timeout=timeout)
    else:
        os.environ.setdefault("MASTER_ADDR", "localhost")
        if master_port is not None:
            os.environ["MASTER_PORT"] = str(master_port)
        else:
            os.environ.setdefault("MASTER_PORT", str(DEFAULT_MASTER_PORT))
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout)

    if backend == "nccl":
        torch.cuda.set_device(get_local_rank())
    logging.info(
        f"Joined process group: rank {dist.get_rank()}/{dist.get_world_size()}, backend "
        f"{backend}, timeout {timeout.total_seconds():.0f} s"
    )


def cleanup_dist() -> None:
    """Leave the process group (no-op if none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def min_over_ranks(value: int, device: torch.device, world_size: int) -> int:
    """The smallest ``value`` of all ranks (``value`` itself with one rank), so that every
    rank takes the same decision. ``device`` must suit the backend (a CUDA device for NCCL)."""
    if world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def get_world_size() -> int:
    """Number of processes: from the process group, else ``$WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def get_rank() -> int:
    """Global rank: from the process group, else ``$RANK``, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def get_local_rank() -> int:
    """Rank within this machine: ``$LOCAL_RANK`` (torchrun), else the global rank (spawn)."""
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    return get_rank()


def choose_device(rank: int) -> torch.device:
    """The device this rank trains on: ``cuda:<local rank>`` when CUDA is available, else CPU.

    Under torchrun the local rank comes from ``$LOCAL_RANK``; with spawn it is ``rank``.
    """
    if not torch.cuda.is_available():
        return torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    num_gpus = torch.cuda.device_count()
    if local_rank >= num_gpus:
        raise RuntimeError(
            f"rank {rank} (local rank {local_rank}) has no GPU: only {num_gpus} visible; "
            "lower --world-size or set CUDA_VISIBLE_DEVICES"
        )
    return torch.device("cuda", local_rank)


def add_dist_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--world-size``, ``--master-port``, ``--use-ddp-launch`` and ``--dist-timeout``."""
    parser.add_argument(
        "--world-size", type=int, default=1, help="Number of processes (GPUs) on this machine."
    )
    parser.add_argument(
        "--master-port",
        type=int,
        default=DEFAULT_MASTER_PORT,
        help="Port on localhost where the spawned processes meet (--world-size > 1).",
    )
    parser.add_argument(
        "--use-ddp-launch",
        type=str2bool,
        default=False,
        help="The script runs under torchrun (multi-node); detected automatically when "
        "torchrun's environment variables are present.",
    )
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="Seconds a rank waits for the others in a collective before failing "
        "(so a dead rank stops the job instead of hanging it).",
    )


def launch(
    run_fn: Callable[[int, int, Any], None], args: Any, world_size: Optional[int] = None
) -> None:
    """Run ``run_fn(rank, world_size, args)`` in every process of the job.

    Under torchrun (or ``args.use_ddp_launch``) this process is one rank: ``run_fn`` is called
    once with ``$RANK``/``$WORLD_SIZE`` and ``args.use_ddp_launch`` is set to True. Otherwise
    ``world_size`` (default ``args.world_size``) processes are spawned when it is > 1 (an
    exception in any of them is re-raised here and the others are stopped), or ``run_fn`` runs
    in this process for 1.
    """
    if world_size is None:
        world_size = getattr(args, "world_size", 1)
    if getattr(args, "use_ddp_launch", False) or is_torchrun():
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise RuntimeError("--use-ddp-launch true: RANK/WORLD_SIZE not set; use torchrun")
        env_world_size = int(os.environ["WORLD_SIZE"])
        if world_size not in (1, env_world_size):
            logging.warning(
                f"--world-size {world_size} ignored under torchrun (WORLD_SIZE={env_world_size})"
            )
        if hasattr(args, "__dict__") or isinstance(args, dict):
            _set_arg(args, "use_ddp_launch", True)
        run_fn(int(os.environ["RANK"]), env_world_size, args)
    elif world_size > 1:
        _spawn(run_fn, world_size, args)
    elif world_size == 1:
        run_fn(0, 1, args)
    else:
        raise ValueError(f"--world-size must be >= 1, got {world_size}")


# Exit status of a spawned rank that stopped on a user error (its exception is in the queue).
_USER_ERROR_EXIT = 3


def _rank_main(rank: int, run_fn: Callable, world_size: int, args: Any, errors: Any) -> None:
    """One spawned rank: a user error (bad flag value, broken manifest, missing file) goes to
    the parent through ``errors`` and ends the rank with ``_USER_ERROR_EXIT``, so the parent
    prints the one line the single-process run prints instead of torch's traceback of the
    child. With ``ICEFALL_LITE_DEBUG=1`` (``--debug``) the traceback is kept."""
    if debug_from_env():
        run_fn(rank, world_size, args)
        return
    try:
        run_fn(rank, world_size, args)
    except USER_ERRORS as error:
        # Sent as a plain UsageError / OSError: a subclass with its own __init__ might not
        # survive pickling, the message does.
        if isinstance(error, OSError) and not isinstance(error, UsageError):
            plain: Exception = OSError(error.errno, error.strerror, error.filename)
        else:
            plain = UsageError(str(error))
        errors.put((rank, plain))
        raise SystemExit(_USER_ERROR_EXIT)


def _spawn(run_fn: Callable, world_size: int, args: Any) -> None:
    """``world_size`` spawned processes; the first rank's user error is re-raised here as it
    is (so the script's error convention prints it on one line), anything else as torch's
    ``ProcessRaisedException`` / ``ProcessExitedException`` with the rank's traceback."""
    errors = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_rank_main, args=(run_fn, world_size, args, errors), nprocs=world_size)
    except mp.ProcessExitedException as failure:
        if failure.exit_code != _USER_ERROR_EXIT or errors.empty():
            raise
        rank, error = errors.get()
        logging.error(f"rank {rank} of {world_size} stopped: {error}")
        raise error from None


def _set_arg(args: Any, name: str, value: Any) -> None:
    if isinstance(args, dict):
        args[name] = value
    else:
        setattr(args, name, value)
