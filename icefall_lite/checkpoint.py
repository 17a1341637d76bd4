"""Checkpoints: atomic saving, safe loading, averaging and the files train/decode/export use.

File layout (icefall's): ``<exp_dir>/epoch-<N>.pt`` at the end of each epoch and
``<exp_dir>/checkpoint-<batch_idx_train>.pt`` every ``--save-every-n`` batches. A checkpoint is a
dict with ``model`` (state dict), optionally ``model_avg``, ``optimizer``, ``scheduler``,
``grad_scaler``, ``sampler``, ``rng_state``, and every entry of ``params`` at the top level
(``batch_idx_train``, ``average_period``, ``cur_epoch``, ...), stored as plain Python types so
that loading needs no pickled classes (``torch.load(weights_only=True)``).

Running average (``model_avg``): after every ``average_period``-th batch,
``avg <- avg * (1 - p / n) + cur * (p / n)`` with ``p = average_period``,
``n = batch_idx_train``; so ``avg`` at batch ``n`` is the mean of the weights after batches
``p, 2p, ..., n`` (for p = 1, after every batch). The mean over a window ``(n_start, n_end]``
then follows exactly from the two stored averages:
``(avg_end * n_end - avg_start * n_start) / (n_end - n_start)``.
"""

import enum
import glob
import logging
import random
import re
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from icefall_lite.errors import UsageError
from icefall_lite.utils import Pathlike, atomic_open, str2bool

__all__ = [
    "CheckpointError",
    "add_model_averaging_arguments",
    "average_checkpoints",
    "average_checkpoints_with_averaged_model",
    "capture_rng_state",
    "find_checkpoints",
    "load_averaged_model",
    "load_checkpoint_files",
    "load_checkpoint",
    "read_checkpoint",
    "remove_checkpoints",
    "remove_stale_temporary_files",
    "resolve_epoch_checkpoints",
    "resolve_iter_checkpoints",
    "restore_rng_state",
    "save_checkpoint",
    "save_checkpoint_with_global_batch_idx",
    "stored_params",
    "update_averaged_model",
]

# Top-level keys holding component states; params entries may not use these names.
_COMPONENT_KEYS = (
    "model",
    "model_avg",
    "optimizer",
    "scheduler",
    "grad_scaler",
    "sampler",
    "rng_state",
)


class CheckpointError(UsageError):
    """A checkpoint file is missing, unreadable, unsafe or lacks what the caller needs (a
    :class:`~icefall_lite.errors.UsageError`: the scripts print it as one line)."""


def _unwrap(model: nn.Module) -> nn.Module:
    """The wrapped module of a DDP/DataParallel model (its state-dict names lack ``module.``)."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def _to_plain(value: Any) -> Any:
    """Convert ``value`` to types ``torch.load(weights_only=True)`` accepts.

    Safe loading only rebuilds the exact built-in types, so subclasses are converted to their
    base type: ``torch.__version__`` (a ``str`` subclass) to ``str``, ``numpy.float64`` (a
    ``float`` subclass) to ``float``, namedtuples to tuples, dict-likes (AttributeDict,
    OrderedDict) to dicts, sets to lists. Enums become their values, numpy arrays tensors,
    Paths and other unknown objects strings. Tuples stay tuples (``random.setstate`` needs
    one); tensors and dtypes stay as they are.
    """
    if value is None or isinstance(value, (torch.Tensor, torch.dtype)):
        return value
    # Before the scalar checks: IntEnum is an int, numpy.float64 a float.
    if isinstance(value, enum.Enum):
        return _to_plain(value.value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    for plain_type in (bool, int, float, str):
        if isinstance(value, plain_type):
            return plain_type(value) if type(value) is not plain_type else value
    if isinstance(value, dict):
        return {_to_plain(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_to_plain(v) for v in value)
    if isinstance(value, (list, set, frozenset)):
        return [_to_plain(v) for v in value]
    return str(value)


def capture_rng_state() -> Dict[str, Any]:
    """States of Python's, NumPy's, torch's CPU and (if present) CUDA random generators."""
    np_state = np.random.get_state()
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "algorithm": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`: set every generator back to the stored state."""
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["algorithm"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    filename: Pathlike,
    model: nn.Module,
    model_avg: Optional[nn.Module] = None,
    params: Optional[Dict[str, Any]] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Optional[Any] = None,
    scaler: Optional[Any] = None,
    sampler: Optional[Any] = None,
    rank: int = 0,
) -> None:
    """Save training state to ``filename`` atomically; only rank 0 writes.

    The file is written under a temporary name in the same directory and renamed at the end,
    so a crash never leaves a partial file under ``filename`` (an older checkpoint of that name
    stays intact). DDP-wrapped models are unwrapped first. ``params`` entries are converted to
    plain types (Path -> str, ...) and stored at the top level of the checkpoint dict.

    Args:
      filename: destination, e.g. ``exp/epoch-3.pt``.
      model: the model being trained (possibly DDP-wrapped).
      model_avg: the running-average model kept on rank 0 (see module docstring).
      params: hyper-parameters and training counters (``batch_idx_train``, ...).
      optimizer, scheduler, scaler, sampler: anything with ``state_dict()``; ``scaler`` is the
        AMP grad scaler, ``sampler`` the Lhotse sampler (for resuming mid-epoch).
      rank: the caller's rank; other ranks return without writing.
    """
    if rank != 0:
        return
    checkpoint: Dict[str, Any] = {
        "model": _unwrap(model).state_dict(),
        "model_avg": model_avg.state_dict() if model_avg is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "grad_scaler": scaler.state_dict() if scaler is not None else None,
        "sampler": _to_plain(sampler.state_dict()) if sampler is not None else None,
        "rng_state": capture_rng_state(),
    }
    for key, value in (params or {}).items():
        if key in _COMPONENT_KEYS:
            raise ValueError(f"save_checkpoint({filename}): params key '{key}' is reserved")
        checkpoint[key] = _to_plain(value)

    try:
        with atomic_open(filename, "wb") as f:
            torch.save(checkpoint, f)
    except OSError as error:  # a full disk, a lost mount: name the checkpoint, not the temp file
        raise OSError(
            error.errno,
            f"{error.strerror or error}; cannot write this checkpoint (an older file of that name "
            "is left as it was)",
            str(filename),
        ) from error
    logging.info(f"Saved checkpoint to {filename}")


def save_checkpoint_with_global_batch_idx(
    out_dir: Pathlike,
    global_batch_idx: int,
    model: nn.Module,
    model_avg: Optional[nn.Module] = None,
    params: Optional[Dict[str, Any]] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Optional[Any] = None,
    scaler: Optional[Any] = None,
    sampler: Optional[Any] = None,
    rank: int = 0,
) -> Path:
    """:func:`save_checkpoint` to ``<out_dir>/checkpoint-<global_batch_idx>.pt``; returns it."""
    filename = Path(out_dir) / f"checkpoint-{global_batch_idx}.pt"
    save_checkpoint(
        filename,
        model=model,
        model_avg=model_avg,
        params=params,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        sampler=sampler,
        rank=rank,
    )
    return filename


def _first_sentence(message: str) -> str:
    """The first line of ``message`` up to its first sentence end (torch appends advice)."""
    line = message.splitlines()[0] if message else ""
    return line.split(". ")[0]


def read_checkpoint(filename: Pathlike, map_location: Union[str, torch.device] = "cpu") -> dict:
    """Load a checkpoint dict without executing pickled code (``weights_only=True``).

    Raises:
      CheckpointError naming the file when it is missing, truncated, not a torch checkpoint,
      or carries a pickled class outside torch's safe list.
    """
    filename = Path(filename)
    if not filename.is_file():
        raise CheckpointError(f"{filename}: checkpoint file does not exist")
    try:
        checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types here (OSError, KeyError, UnpicklingError)
        message = str(e)
        found = re.search(r"GLOBAL ([\w.]+)", message)
        if "Weights only load failed" in message and (found or zipfile.is_zipfile(filename)):
            what = f"'{found.group(1)}'" if found else "an object of a class"
            raise CheckpointError(
                f"{filename}: refusing to load: it contains {what}, which safe loading "
                "(weights_only=True) does not allow; only tensors and plain Python types are read"
            ) from None
        raise CheckpointError(
            f"{filename}: cannot read checkpoint (truncated, or not written by torch.save): "
            f"{type(e).__name__}: {_first_sentence(message)}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{filename}: expected a checkpoint dict, found {type(checkpoint).__name__}"
        )
    return checkpoint


def stored_params(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The params a checkpoint was saved with (its top-level non-component entries).

    Checkpoints written before ``--encoder-embed-channels`` existed used 128 front-end
    channels for every preset; that is filled in so they keep loading.
    """
    # The EMA weights (training/ema.py) are a model, not a setting.
    params = {k: v for k, v in checkpoint.items() if k not in _COMPONENT_KEYS + ("ema_state",)}
    if "model_size" in params and "encoder_embed_channels" not in params:
        params["encoder_embed_channels"] = 128
    return params


def _model_state(checkpoint: dict, filename: Pathlike, key: str = "model") -> Dict[str, Any]:
    state = checkpoint.get(key)
    if state is None:
        raise CheckpointError(f"{filename}: checkpoint has no '{key}' entry")
    return state


def load_checkpoint(
    filename: Pathlike,
    model: nn.Module,
    model_avg: Optional[nn.Module] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Optional[Any] = None,
    scaler: Optional[Any] = None,
    sampler: Optional[Any] = None,
    strict: bool = False,
) -> dict:
    """Restore the given objects from ``filename`` (safe loading, see :func:`read_checkpoint`).

    The model state is loaded with ``strict`` (missing/unexpected names are logged when not
    strict); a ``module.`` prefix left by a DDP-wrapped save is removed. Each other object
    given is restored from its entry, which is then removed from the returned dict.

    Returns:
      The rest of the checkpoint: the saved params (``batch_idx_train``, ``cur_epoch``, ...)
      and any entry not consumed (e.g. ``sampler`` when no sampler was given).
    """
    checkpoint = read_checkpoint(filename)
    state = _model_state(checkpoint, filename)
    checkpoint.pop("model")
    if state and all(name.startswith("module.") for name in state):
        state = {name[len("module.") :]: value for name, value in state.items()}
    try:
        missing, unexpected = _unwrap(model).load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"{filename}: model does not match: {e}") from None
    if missing or unexpected:
        logging.warning(
            f"{filename}: missing parameters {missing}, unexpected parameters {unexpected}"
        )

    targets = (
        ("model_avg", model_avg),
        ("optimizer", optimizer),
        ("scheduler", scheduler),
        ("grad_scaler", scaler),
        ("sampler", sampler),
    )
    for key, target in targets:
        if target is None:
            continue
        saved = checkpoint.pop(key, None)
        if saved is None:
            logging.warning(f"{filename}: no '{key}' state saved; leaving it as it is")
            continue
        if key == "grad_scaler" and not saved:
            # A disabled GradScaler saves {} (e.g. a run without --use-fp16), and an enabled
            # one refuses to load that; resuming with fp16 then starts from a fresh scale.
            logging.info(f"{filename}: the saved grad scaler was disabled; using a fresh one")
            continue
        target.load_state_dict(saved)
    return checkpoint


def _unique_tensor_names(state_dict: Dict[str, Any]) -> Dict[str, List[str]]:
    """Group names whose tensors are the same view of the same storage (tied weights).

    Returns ``{representative name: [all names of that tensor]}``; non-tensor entries are
    left out.
    """
    groups: Dict[tuple, List[str]] = {}
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            continue
        identity = (
            value.untyped_storage().data_ptr(),
            value.storage_offset(),
            tuple(value.shape),
            tuple(value.stride()),
            value.dtype,
        )
        groups.setdefault(identity, []).append(name)
    return {names[0]: names for names in groups.values()}


def _check_same_tensors(
    reference: Dict[str, Any], reference_file: Pathlike, state: Dict[str, Any], filename: Pathlike
) -> None:
    """Checkpoints averaged together must hold the same tensor names and shapes (the same
    architecture); otherwise a CheckpointError names both files and the first difference."""
    if state.keys() != reference.keys():
        differing = sorted(set(state.keys()) ^ set(reference.keys()))
        raise CheckpointError(
            f"{filename}: parameter names differ from {reference_file}: {differing[:5]}; "
            "only checkpoints of one model can be averaged"
        )
    for name, tensor in reference.items():
        other = state[name]
        if isinstance(tensor, torch.Tensor) and tuple(other.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{filename}: '{name}' has shape {tuple(other.shape)} but "
                f"{tuple(tensor.shape)} in {reference_file}: these checkpoints are of models of "
                "different sizes and cannot be averaged (check --epoch/--iter/--avg and "
                "--exp-dir)"
            )


def average_checkpoints(
    filenames: Sequence[Pathlike], device: Union[str, torch.device] = "cpu"
) -> Dict[str, Any]:
    """Element-wise mean of the ``model`` state dicts in ``filenames``.

    Floating tensors are averaged (accumulated in float64, cast back); integer tensors are
    summed and floor-divided; other entries are taken from the first file. Names sharing one
    tensor (tied weights) are averaged once and share the result.

    Returns:
      A state dict on ``device`` for ``model.load_state_dict``.
    """
    if not filenames:
        raise CheckpointError("average_checkpoints: no checkpoint files given")
    first = _model_state(read_checkpoint(filenames[0], device), filenames[0])
    groups = _unique_tensor_names(first)
    sums = {}
    for name in groups:
        tensor = first[name]
        sums[name] = tensor.to(torch.float64) if tensor.is_floating_point() else tensor.clone()

    for filename in filenames[1:]:
        state = _model_state(read_checkpoint(filename, device), filename)
        _check_same_tensors(first, filenames[0], state, filename)
        for name in groups:
            sums[name] += state[name].to(sums[name].dtype)

    count = len(filenames)
    averaged = dict(first)
    for name, names in groups.items():
        reference = first[name]
        if reference.is_floating_point():
            mean = (sums[name] / count).to(reference.dtype)
        elif reference.dtype == torch.bool:
            mean = reference
        else:
            mean = torch.div(sums[name], count, rounding_mode="floor")
        for tied_name in names:
            averaged[tied_name] = mean
    return averaged


def _blend_in_place(
    target: Dict[str, Any],
    other: Dict[str, Any],
    weight_target: float,
    weight_other: float,
    integers_from_other: bool,
) -> None:
    """``target <- weight_target * target + weight_other * other`` for floating tensors,
    in place (each shared tensor once). Integer buffers (counters such as BatchNorm's
    ``num_batches_tracked``) are not averaged: they are copied from ``other`` if
    ``integers_from_other``, else kept."""
    for name in _unique_tensor_names(target):
        tensor = target[name]
        source = other[name].to(device=tensor.device)
        if tensor.is_floating_point():
            tensor.mul_(weight_target).add_(source.to(tensor.dtype), alpha=weight_other)
        elif integers_from_other:
            tensor.copy_(source)


@torch.no_grad()
def update_averaged_model(
    params: Dict[str, Any], model_cur: nn.Module, model_avg: nn.Module
) -> None:
    """Fold the current weights into the running average ``model_avg`` (in place).

    Call after batch ``params["batch_idx_train"]`` when it is a multiple of
    ``params["average_period"]``; the current weights get weight ``average_period /
    batch_idx_train``.
    """
    average_period = params["average_period"]
    batch_idx_train = params["batch_idx_train"]
    if batch_idx_train <= 0:
        raise ValueError(
            f"update_averaged_model: batch_idx_train must be > 0, got {batch_idx_train}"
        )
    weight_cur = average_period / batch_idx_train
    _blend_in_place(
        model_avg.state_dict(),
        _unwrap(model_cur).state_dict(),
        1.0 - weight_cur,
        weight_cur,
        integers_from_other=True,
    )


def _averaging_counters(checkpoint: dict, filename: Pathlike) -> tuple:
    for key in ("average_period", "batch_idx_train"):
        if key not in checkpoint:
            raise CheckpointError(f"{filename}: checkpoint params lack '{key}'")
    _model_state(checkpoint, filename, "model_avg")
    return checkpoint["average_period"], checkpoint["batch_idx_train"]


def average_checkpoints_with_averaged_model(
    filename_start: Pathlike,
    filename_end: Pathlike,
    device: Union[str, torch.device] = "cpu",
) -> Dict[str, Any]:
    """Mean of the weights over the training window between two checkpoints.

    Uses the running averages stored in both files (see module docstring):
    ``(avg_end * n_end - avg_start * n_start) / (n_end - n_start)``, where ``n`` is each
    file's ``batch_idx_train`` rounded down to a multiple of ``average_period`` (the last
    update of its average). The window is ``(n_start, n_end]``; ``filename_start`` itself is
    excluded.

    Returns:
      A state dict (in ``model_avg``'s dtype, usually float64) on ``device``.
    """
    start = read_checkpoint(filename_start, device)
    end = read_checkpoint(filename_end, device)
    period_start, idx_start = _averaging_counters(start, filename_start)
    period_end, idx_end = _averaging_counters(end, filename_end)
    if period_start != period_end:
        raise CheckpointError(
            f"{filename_start} has average_period {period_start} but {filename_end} has "
            f"{period_end}; their averages cannot be combined"
        )
    n_start = (idx_start // period_start) * period_start
    n_end = (idx_end // period_end) * period_end
    if n_end <= n_start:
        raise CheckpointError(
            f"{filename_end} (batch {idx_end}) must come after {filename_start} "
            f"(batch {idx_start}) by at least average_period={period_end} batches"
        )
    window = n_end - n_start
    averaged = end["model_avg"]
    _check_same_tensors(averaged, filename_end, start["model_avg"], filename_start)
    _blend_in_place(
        averaged, start["model_avg"], n_end / window, -n_start / window, integers_from_other=False
    )
    return averaged


_CHECKPOINT_RE = re.compile(r"checkpoint-(\d+)\.pt$")
_EPOCH_RE = re.compile(r"epoch-(\d+)\.pt$")


def _numbered_files(out_dir: Pathlike, pattern: re.Pattern, glob_pattern: str) -> Dict[int, str]:
    numbered = {}
    for path in glob.glob(str(Path(out_dir) / glob_pattern)):
        found = pattern.search(Path(path).name)
        if found:
            numbered[int(found.group(1))] = path
    return numbered


def find_checkpoints(out_dir: Pathlike, iteration: int = 0) -> List[str]:
    """``checkpoint-<N>.pt`` files in ``out_dir``, newest (largest N) first.

    Args:
      iteration: if >= 0, keep those with ``N >= iteration``; if negative, keep those with
        ``N <= -iteration`` (icefall's convention, used by ``--iter``).
    """
    numbered = _numbered_files(out_dir, _CHECKPOINT_RE, "checkpoint-[0-9]*.pt")
    if iteration >= 0:
        selected = [n for n in numbered if n >= iteration]
    else:
        selected = [n for n in numbered if n <= -iteration]
    return [numbered[n] for n in sorted(selected, reverse=True)]


def remove_stale_temporary_files(out_dir: Pathlike) -> List[str]:
    """Delete the ``.<name>.<random>.tmp`` files a killed save left in ``out_dir``.

    :func:`save_checkpoint` writes through such a file and renames it at the end, so one left
    behind is always partial. Call before anything in this job writes into ``out_dir`` (the
    start of training, rank 0). Returns the removed files' names (each also logged).
    """
    removed = []
    for path in sorted(Path(out_dir).glob(".*.tmp")):
        if path.is_file():
            path.unlink()
            removed.append(str(path))
            logging.warning(f"Removed {path}, a partial file left by an interrupted save")
    return removed


def remove_checkpoints(out_dir: Pathlike, topk: int, rank: int = 0) -> None:
    """Delete all but the ``topk`` newest ``checkpoint-<N>.pt`` files (``--keep-last-k``).

    Only rank 0 deletes. ``epoch-*.pt`` files are never touched.
    """
    if topk < 1:
        raise ValueError(f"--keep-last-k must be >= 1, got {topk}")
    if rank != 0:
        return
    for path in find_checkpoints(out_dir)[topk:]:
        Path(path).unlink(missing_ok=True)


def _describe(numbers: Sequence[int], kind: str, exp_dir: Pathlike) -> str:
    if not numbers:
        return f"no {kind}-*.pt files exist in {exp_dir}"
    return f"{kind}s available in {exp_dir}: {', '.join(str(n) for n in sorted(numbers))}"


def resolve_epoch_checkpoints(
    exp_dir: Pathlike, epoch: int, avg: int, use_averaged_model: bool = False
) -> List[Path]:
    """Files for ``--epoch``/``--avg`` (oldest first).

    Without ``use_averaged_model``: ``epoch-(epoch-avg+1).pt`` ... ``epoch-<epoch>.pt`` (to
    average with :func:`average_checkpoints`). With it: ``[epoch-(epoch-avg).pt,
    epoch-<epoch>.pt]`` (start and end for :func:`average_checkpoints_with_averaged_model`).

    Raises:
      CheckpointError listing the existing epochs when a needed file is missing.
    """
    if avg < 1:
        raise CheckpointError(f"--avg must be >= 1, got {avg}")
    if use_averaged_model and epoch - avg < 1:
        # The window starts at the end of epoch (epoch - avg); epoch-0.pt never exists.
        hint = f"use --avg {epoch - 1} or less, or " if epoch > 1 else "use "
        plain = (
            f"epoch-{epoch}.pt's own weights"
            if avg == 1
            else f"the mean of epoch-{epoch - avg + 1}.pt .. epoch-{epoch}.pt"
        )
        raise CheckpointError(
            f"--epoch {epoch} --avg {avg} --use-averaged-model true would average from the end "
            f"of epoch {epoch - avg} (epoch-{epoch - avg}.pt), which cannot exist: {hint}"
            f"--use-averaged-model 0 ({plain})"
        )
    if use_averaged_model:
        wanted = [epoch - avg, epoch]
    else:
        wanted = list(range(epoch - avg + 1, epoch + 1))
    existing = _numbered_files(exp_dir, _EPOCH_RE, "epoch-[0-9]*.pt")
    missing = [n for n in wanted if n not in existing]
    if missing:
        raise CheckpointError(
            f"--epoch {epoch} --avg {avg}"
            f"{' --use-averaged-model true' if use_averaged_model else ''} needs epochs "
            f"{wanted}, missing {missing}; {_describe(list(existing), 'epoch', exp_dir)}"
        )
    return [Path(existing[n]) for n in wanted]


def resolve_iter_checkpoints(
    exp_dir: Pathlike, iteration: int, avg: int, use_averaged_model: bool = False
) -> List[Path]:
    """Files for ``--iter``/``--avg`` (oldest first).

    ``checkpoint-<iteration>.pt`` must exist; it and the ``avg - 1`` newest checkpoints
    before it are returned (``avg + 1`` files' first and last, as ``[start, end]``, with
    ``use_averaged_model``).

    Raises:
      CheckpointError listing the existing iterations when there are too few.
    """
    if avg < 1:
        raise CheckpointError(f"--avg must be >= 1, got {avg}")
    existing = _numbered_files(exp_dir, _CHECKPOINT_RE, "checkpoint-[0-9]*.pt")
    needed = avg + 1 if use_averaged_model else avg
    candidates = find_checkpoints(exp_dir, iteration=-iteration)[:needed]
    if iteration not in existing or len(candidates) < needed:
        raise CheckpointError(
            f"--iter {iteration} --avg {avg}"
            f"{' --use-averaged-model true' if use_averaged_model else ''} needs "
            f"checkpoint-{iteration}.pt and {needed - 1} older checkpoint(s); "
            f"{_describe(list(existing), 'checkpoint', exp_dir)}"
        )
    if use_averaged_model:
        return [Path(candidates[-1]), Path(candidates[0])]
    return [Path(path) for path in reversed(candidates)]


def load_averaged_model(
    model: nn.Module,
    exp_dir: Pathlike,
    epoch: int,
    avg: int,
    iteration: int = 0,
    use_averaged_model: bool = True,
    device: Union[str, torch.device] = "cpu",
) -> List[Path]:
    """Load the weights decode/export scripts ask for with ``--epoch/--iter/--avg/
    --use-averaged-model`` into ``model`` (strictly). ``iteration > 0`` takes precedence over
    ``epoch``. Returns the files used."""
    if iteration > 0:
        files = resolve_iter_checkpoints(exp_dir, iteration, avg, use_averaged_model)
    else:
        files = resolve_epoch_checkpoints(exp_dir, epoch, avg, use_averaged_model)
    load_checkpoint_files(model, files, use_averaged_model, device)
    return files


def load_checkpoint_files(
    model: nn.Module,
    files: Sequence[Pathlike],
    use_averaged_model: bool,
    device: Union[str, torch.device] = "cpu",
    use_ema: bool = False,
) -> None:
    """Load into ``model`` (strictly) the weights of already resolved files (oldest first, from
    :func:`resolve_epoch_checkpoints` / :func:`resolve_iter_checkpoints`): the newest file's
    EMA weights with ``use_ema``, the window between the two running averages with
    ``use_averaged_model``, else the mean of the files."""
    if use_ema:
        checkpoint = read_checkpoint(files[-1], device)
        if "ema_state" not in checkpoint:
            raise CheckpointError(
                f"{files[-1]}: no EMA weights (trained without --ema); drop --use-ema"
            )
        state = checkpoint["ema_state"]["model"]
        logging.info(f"Loaded the EMA weights of {files[-1]}")
    elif use_averaged_model:
        state = average_checkpoints_with_averaged_model(files[0], files[1], device)
        logging.info(f"Averaged the window ({files[0]}, {files[1]}] of the running average")
    elif len(files) == 1:
        state = _model_state(read_checkpoint(files[0], device), files[0])
        logging.info(f"Loaded {files[0]}")
    else:
        state = average_checkpoints(files, device)
        logging.info(f"Averaged {len(files)} checkpoints: {[str(f) for f in files]}")
    _unwrap(model).load_state_dict(state, strict=True)


def add_model_averaging_arguments(parser: Any) -> None:
    """Add icefall's ``--exp-dir --epoch --iter --avg --use-averaged-model`` to ``parser``.

    Recipes may change the defaults with ``parser.set_defaults``.
    """
    parser.add_argument("--exp-dir", type=str, default="zipformer/exp", help="Experiment dir.")
    parser.add_argument(
        "--epoch", type=int, default=30, help="Use the checkpoint of this epoch (epoch-N.pt)."
    )
    parser.add_argument(
        "--iter",
        type=int,
        default=0,
        help="If > 0, use checkpoint-<iter>.pt (and older ones) instead of --epoch.",
    )
    parser.add_argument(
        "--avg",
        type=int,
        default=9,
        help="Number of epochs/checkpoints to average, ending at --epoch or --iter.",
    )
    parser.add_argument(
        "--use-averaged-model",
        type=str2bool,
        default=True,
        help="Average over the window from the running averages stored in the checkpoints "
        "(needs epoch-(epoch-avg).pt); if false, average --avg checkpoint files.",
    )
    parser.add_argument(
        "--use-ema",
        type=str2bool,
        default=False,
        help="Use the EMA weights stored in the --epoch/--iter checkpoint (trained with --ema) "
        "instead of averaging.",
    )
