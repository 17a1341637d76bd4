"""Small helpers every recipe script needs: the params dict, flag parsing, logging, metrics,
padding masks, environment reports and atomic file writes.

Nothing here reads ``sys.argv``; recipes call these functions with their own arguments.
"""

import argparse
import collections
import contextlib
import importlib.metadata
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.distributed as dist

Pathlike = Union[str, Path]

__all__ = [
    "AttributeDict",
    "MetricsTracker",
    "Pathlike",
    "atomic_open",
    "get_env_info",
    "make_pad_mask",
    "publish_file",
    "setup_logger",
    "str2bool",
]


class AttributeDict(dict):
    """A ``dict`` whose keys can also be read and written as attributes (``params.exp_dir``).

    Recipes keep their fixed hyper-parameters in one of these (``get_params()``), merge the
    command-line flags into it and store it in every checkpoint.
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            # AttributeError (not KeyError) keeps hasattr(), getattr(x, k, default) and pickle
            # working as they do for ordinary objects.
            raise AttributeError(f"AttributeDict has no key '{key}'") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(f"AttributeDict has no key '{key}'") from None

    def __str__(self) -> str:
        width = max((len(str(k)) for k in self), default=0)
        return "\n".join(f"{str(k):<{width}} : {v}" for k, v in self.items())


def str2bool(value: Union[str, bool]) -> bool:
    """``type=`` for argparse flags taking a boolean: accepts true/false, yes/no, 1/0, t/f, y/n."""
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "t", "yes", "y", "1"):
        return True
    if lowered in ("false", "f", "no", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got '{value}'")


def publish_file(tmp_name: Pathlike, filename: Pathlike) -> None:
    """Rename a finished temporary file (from ``tempfile.mkstemp`` beside ``filename``) over
    ``filename``, first giving it ordinary permissions (``0666`` less the umask, usually
    ``0644``): mkstemp makes files readable by their owner only."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    os.replace(tmp_name, filename)


@contextlib.contextmanager
def atomic_open(
    filename: Pathlike, mode: str = "w", encoding: Optional[str] = "utf-8"
) -> Iterator[IO]:
    """Open ``filename`` for writing so that readers only ever see the old or the complete new file.

    Writes go to a temporary file in the same directory (so the final rename stays on one file
    system and is atomic); on a clean exit it is flushed, fsync-ed and renamed over
    ``filename``; on an exception it is deleted and ``filename`` is left untouched.

    Args:
      filename: destination; its parent directory is created if missing.
      mode: ``"w"`` (text) or ``"wb"`` (binary).
      encoding: text encoding; ignored in binary mode.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got '{mode}'")
    filename = Path(filename)
    filename.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename.name}.", suffix=".tmp", dir=filename.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        publish_file(tmp_name, filename)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def setup_logger(log_filename: Pathlike, log_level: str = "info", use_console: bool = True) -> str:
    """Send ``logging`` output to a per-run file (and the console).

    icefall's convention: ``setup_logger(f"{params.exp_dir}/log/log-train")`` writes to
    ``log-train-<YYYY-mm-dd-HH-MM-SS>``, and under DDP to ``log-train-<date>-<rank>`` with the
    rank/world size in every line.

    Args:
      log_filename: path prefix of the log file; its directory is created.
      log_level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
      use_console: also log to stderr.

    Returns:
      The path of the log file actually written.
    """
    levels = {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "critical": logging.CRITICAL,
    }
    if log_level.lower() not in levels:
        raise ValueError(f"--log-level: unknown level '{log_level}', choose from {list(levels)}")
    level = levels[log_level.lower()]

    date_time = datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        line_format = (
            f"%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] ({rank}/{world_size}) %(message)s"
        )
        full_name = f"{log_filename}-{date_time}-{rank}"
    else:
        line_format = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"
        full_name = f"{log_filename}-{date_time}"

    Path(full_name).parent.mkdir(parents=True, exist_ok=True)
    # force=True replaces handlers left by an earlier call (e.g. train then decode in one process).
    logging.basicConfig(
        filename=full_name, format=line_format, level=level, filemode="w", force=True
    )
    if use_console:
        console = logging.StreamHandler()
        console.setLevel(level)
        console.setFormatter(logging.Formatter(line_format))
        logging.getLogger().addHandler(console)
    return full_name


class MetricsTracker(collections.defaultdict):
    """Sums of per-batch statistics (losses, frame and utterance counts), keyed by name.

    Losses are stored summed over frames; ``frames`` holds the frame count and ``utterances``
    the utterance count. When printed or written to TensorBoard each value is divided by
    ``frames`` (or, for keys starting with ``utt_``, by ``utterances``).

    Supports ``a + b`` (key-wise sum), ``a * 0.9`` (scaling, for decaying running totals) and
    ``reduce(device)`` (sum over all DDP ranks).
    """

    def __init__(self) -> None:
        super().__init__(int)

    def __add__(self, other: "MetricsTracker") -> "MetricsTracker":
        total = MetricsTracker()
        for key, value in self.items():
            total[key] = value
        for key, value in other.items():
            total[key] = total[key] + value
        return total

    def __mul__(self, alpha: float) -> "MetricsTracker":
        scaled = MetricsTracker()
        for key, value in self.items():
            scaled[key] = value * alpha
        return scaled

    __rmul__ = __mul__

    def norm_items(self) -> List[Tuple[str, float]]:
        """``[(name, value per frame or per utterance)]`` for every key except the counts."""
        num_frames = float(self["frames"]) if "frames" in self else 1.0
        num_utterances = float(self["utterances"]) if "utterances" in self else 1.0
        normalised = []
        for key, value in self.items():
            if key in ("frames", "utterances"):
                continue
            denominator = num_utterances if key.startswith("utt_") else num_frames
            normalised.append((key, float(value) / denominator if denominator else float("nan")))
        return normalised

    def __str__(self) -> str:
        per_frame = [f"{k}={v:.4g}" for k, v in self.norm_items() if not k.startswith("utt_")]
        per_utt = [f"{k}={v:.4g}" for k, v in self.norm_items() if k.startswith("utt_")]
        text = ", ".join(per_frame)
        text += f", over {float(self['frames']):.2f} frames." if "frames" in self else "."
        if per_utt:
            text += " " + ", ".join(per_utt)
            if "utterances" in self:
                text += f", over {float(self['utterances']):.2f} utterances."
        return text

    def reduce(self, device: Union[str, torch.device]) -> None:
        """Replace every value by its sum over all ranks (in place).

        Every rank must hold the same set of keys (they are sent in sorted order).
        ``device`` must suit the backend: a CUDA device for NCCL, CPU for Gloo.
        """
        keys = sorted(self.keys())
        values = torch.tensor([float(self[k]) for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        for key, value in zip(keys, values.cpu().tolist()):
            self[key] = value

    def write_summary(self, tb_writer: Any, prefix: str, batch_idx: int) -> None:
        """Add each normalised value as the scalar ``<prefix><name>`` at step ``batch_idx``."""
        for key, value in self.norm_items():
            tb_writer.add_scalar(prefix + key, value, batch_idx)


def make_pad_mask(lengths: torch.Tensor, max_len: int = 0) -> torch.Tensor:
    """Mask of padded positions.

    Args:
      lengths: (N,) integer tensor, valid length of each sequence.
      max_len: width of the mask; the result has ``max(max_len, lengths.max())`` columns.

    Returns:
      (N, T) bool tensor, True where the frame is padding (``t >= lengths[n]``).

    Works under torch.jit.script and ONNX export (T follows ``lengths`` at run time).
    """
    assert lengths.ndim == 1, lengths.ndim
    width = torch.clamp(lengths.max(), min=max_len)
    positions = torch.arange(0, width, device=lengths.device)
    return positions.unsqueeze(0) >= lengths.unsqueeze(-1)


def _package_version(name: str) -> str:
    # Reads installed metadata only: optional compiled packages (k2, kaldifeat) are never imported.
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_info(repo_dir: Path) -> Dict[str, str]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {
            "git_sha1": sha + ("-dirty" if dirty else ""),
            "git_branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "git_date": git("log", "-1", "--format=%cd"),
        }
    except (OSError, subprocess.SubprocessError):
        return {"git_sha1": "not in a git repo", "git_branch": "", "git_date": ""}


def get_env_info() -> Dict[str, Any]:
    """What produced a result: package versions, git revision, host, Python and CUDA.

    Recipes log this at start-up and keep it in ``params["env_info"]`` so every checkpoint
    records the code and environment that trained it.
    """
    info: Dict[str, Any] = {
        "torch_version": torch.__version__,
        "torch_cuda_version": str(torch.version.cuda),
        "torch_cuda_available": torch.cuda.is_available(),
        "lhotse_version": _package_version("lhotse"),
        "k2_version": _package_version("k2"),
        "fast_rnnt_version": _package_version("fast_rnnt"),
        "kaldifeat_version": _package_version("kaldifeat"),
        "icefall_lite_path": str(Path(__file__).resolve().parent),
        "python_version": platform.python_version(),
        "hostname": socket.gethostname(),
        "command": " ".join(sys.argv),
    }
    info.update(_git_info(Path(__file__).resolve().parent))
    return info
