"""Which implementation of the RNN-T functions runs: k2, fast_rnnt or the built-in one.

Order of precedence: :func:`set_backend` (what a recipe's ``--rnnt-backend`` flag calls), then the
environment variable ``ICEFALL_LITE_RNNT_BACKEND``, then "auto". "auto" picks the fastest backend
that is importable and supports the tensors' device: k2, then fast_rnnt, then built-in.
k2 and fast_rnnt are imported lazily, the first time they are considered, never at import time.
"""

import argparse
import importlib
import logging
import os
from types import ModuleType
from typing import Dict, Optional

import torch

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "add_rnnt_backend_argument",
    "get_backend",
    "resolve_backend",
    "set_backend",
]

BACKENDS = ("auto", "builtin", "fast_rnnt", "k2")
ENV_VAR = "ICEFALL_LITE_RNNT_BACKEND"
# Fastest first, per device type; "builtin" is always available. On CPU the built-in pruned
# loss measured faster end to end than fast_rnnt's (k2's) CPU kernels (RESULTS.md, "Pruned
# RNN-T loss"), so auto picks it there; on CUDA the compiled kernels come first.
_AUTO_ORDER = {"cuda": ("k2", "fast_rnnt", "builtin"), "cpu": ("builtin", "k2", "fast_rnnt")}

_requested: Optional[str] = None  # set by set_backend(); None means "not set"
_modules: Dict[str, Optional[ModuleType]] = {}


def _check_name(name: str, where: str) -> str:
    name = name.strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"{where}: unknown RNN-T backend {name!r}; choose one of {BACKENDS}")
    return name


def set_backend(name: str) -> None:
    """Selects the backend for all later calls: one of "auto", "builtin", "fast_rnnt", "k2".

    "auto" clears an earlier choice, so ``ICEFALL_LITE_RNNT_BACKEND`` applies again.
    A named backend that cannot be imported raises here, not at the first loss call.
    """
    global _requested
    name = _check_name(name, "set_backend")
    if name not in ("auto", "builtin") and _load(name) is None:
        raise ImportError(f"set_backend: RNN-T backend {name!r} is not importable here")
    _requested = None if name == "auto" else name


def _requested_name() -> str:
    if _requested is not None:
        return _requested
    env = os.environ.get(ENV_VAR, "").strip()
    return _check_name(env, f"environment variable {ENV_VAR}") if env else "auto"


def _load(name: str) -> Optional[ModuleType]:
    """The backend's module, or None if it cannot be imported (cached either way)."""
    if name == "builtin":
        from icefall_lite.rnnt import loss

        return loss
    if name not in _modules:
        try:
            _modules[name] = importlib.import_module(name)
        except Exception as e:  # a broken k2 build raises OSError/RuntimeError, not ImportError
            logging.debug(f"RNN-T backend {name} unavailable: {e}")
            _modules[name] = None
    return _modules[name]


def _supports_device(name: str, device: Optional[torch.device]) -> bool:
    if device is None or device.type == "cpu" or name == "builtin":
        return True
    if device.type != "cuda":
        return False
    module = _load(name)
    with_cuda = getattr(module, "with_cuda", False)
    return bool(with_cuda() if callable(with_cuda) else with_cuda)


def resolve_backend(device: Optional[torch.device] = None) -> str:
    """The concrete backend ("builtin", "fast_rnnt" or "k2") a call on ``device`` will use.

    Raises:
      ImportError: a backend named explicitly (not "auto") is not importable.
      RuntimeError: a backend named explicitly was built without support for ``device``.
    """
    name = _requested_name()
    if name == "auto":
        device_type = (
            "cuda" if device is not None and torch.device(device).type == "cuda" else "cpu"
        )
        for candidate in _AUTO_ORDER[device_type]:
            if _load(candidate) is not None and _supports_device(candidate, device):
                return candidate
        return "builtin"
    if _load(name) is None:
        raise ImportError(f"RNN-T backend {name!r} was requested but cannot be imported")
    if not _supports_device(name, device):
        raise RuntimeError(f"RNN-T backend {name!r} was built without support for {device}")
    return name


def get_backend() -> str:
    """The backend that a CPU call would use now ("builtin", "fast_rnnt" or "k2")."""
    return resolve_backend(None)


def backend_module(device: Optional[torch.device] = None) -> ModuleType:
    """The module whose functions implement the API for a call on ``device``."""
    return _load(resolve_backend(device))


def backend_module_for(name: str) -> ModuleType:
    """The module of a concrete backend ("builtin", "fast_rnnt" or "k2"), bypassing selection."""
    name = _check_name(name, "backend_module_for")
    if name == "auto":
        raise ValueError("backend_module_for: needs a concrete backend, not 'auto'")
    module = _load(name)
    if module is None:
        raise ImportError(f"RNN-T backend {name!r} cannot be imported")
    return module


def add_rnnt_backend_argument(parser: argparse.ArgumentParser) -> None:
    """Adds ``--rnnt-backend {auto,builtin,fast_rnnt,k2}``; pass it to :func:`set_backend`."""
    parser.add_argument(
        "--rnnt-backend",
        type=str,
        default="auto",
        choices=BACKENDS,
        help="Implementation of the pruned RNN-T loss. 'auto' uses the environment variable "
        f"{ENV_VAR} if set, else the fastest importable one (on CUDA: k2, fast_rnnt, "
        "built-in; on CPU the built-in one, which measured fastest there). "
        "All give the same numbers.",
    )
