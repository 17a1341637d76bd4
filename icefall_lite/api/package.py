"""The one-file model package: everything :class:`icefall_lite.ASRModel` needs, in a zip archive.

Members::

    config.json        format and version; model family and its params; feature settings;
                       decoding defaults (see :func:`make_config`)
    model.pt           the state dict, read with torch.load(weights_only=True): tensors only,
                       no pickled code runs
    tokens.txt         "<symbol> <id>" per line
    bpe.model          the SentencePiece model (optional: texts come from tokens.txt)
    normalization.pt   per-bin feature ``mean`` and ``std`` (optional; weights-only too), for a
                       family trained on normalised features

The archive is written under a temporary name beside the destination and renamed when complete,
so a package is either the old file or the whole new one. Reading checks each member and names
what is missing or broken (:class:`PackageError`).
"""

import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from icefall_lite.errors import UsageError
from icefall_lite.utils import publish_file

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PACKAGE_SUFFIX",
    "ModelPackage",
    "PackageError",
    "json_params",
    "read_package",
    "write_package",
]

PathLike = Union[str, Path]

FORMAT = "icefall-lite-model"
FORMAT_VERSION = 1
PACKAGE_SUFFIX = ".icefall"

CONFIG, WEIGHTS, TOKENS, BPE, NORMALIZATION = (
    "config.json",
    "model.pt",
    "tokens.txt",
    "bpe.model",
    "normalization.pt",
)


class PackageError(UsageError):
    """A model package that cannot be used; the message names the file and what is wrong."""


@dataclass
class ModelPackage:
    """A package's contents.

    Attributes:
      config: see :func:`icefall_lite.api.asr_model.make_config` (``model_family``,
        ``model_params``, ``features``, ``decoding``).
      state_dict: the model's weights.
      tokens: the text of tokens.txt.
      bpe_model: bytes of bpe.model, or None.
      normalization: ``{"mean": (F,), "std": (F,)}`` or None.
    """

    config: Dict[str, Any]
    state_dict: Dict[str, torch.Tensor]
    tokens: str
    bpe_model: Optional[bytes] = None
    normalization: Optional[Dict[str, torch.Tensor]] = None


def json_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The entries of ``params`` that JSON stores as they are (numbers, strings, booleans,
    None, lists of those); others (tensors, RNG states, paths) are left out, paths as str."""

    def plain(value: Any) -> bool:
        if value is None or isinstance(value, (bool, int, float, str)):
            return True
        return isinstance(value, (list, tuple)) and all(plain(v) for v in value)

    out = {}
    for key, value in params.items():
        if isinstance(value, Path):
            value = str(value)
        if plain(value):
            out[str(key)] = list(value) if isinstance(value, tuple) else value
    return out


def _tensor_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def write_package(path: PathLike, package: ModelPackage) -> Path:
    """Write ``package`` to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = dict(package.config, format=FORMAT, format_version=FORMAT_VERSION)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr(CONFIG, json.dumps(config, indent=2, sort_keys=True))
                zf.writestr(WEIGHTS, _tensor_bytes(dict(package.state_dict)))
                zf.writestr(TOKENS, package.tokens)
                if package.bpe_model is not None:
                    zf.writestr(BPE, package.bpe_model)
                if package.normalization is not None:
                    zf.writestr(NORMALIZATION, _tensor_bytes(dict(package.normalization)))
            f.flush()
            os.fsync(f.fileno())
        publish_file(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path


def _load_tensors(data: bytes, what: str, path: Path, map_location: Any) -> Dict[str, Any]:
    try:
        value = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as error:  # UnpicklingError for a pickled class, RuntimeError for junk
        message = " ".join(str(error).split())[:160]
        raise PackageError(
            f"{path}: {what} cannot be read safely (only tensors are allowed; weights-only "
            f"load refused it): {type(error).__name__}: {message}"
        ) from None
    if not isinstance(value, dict):
        raise PackageError(f"{path}: {what} holds a {type(value).__name__}, expected a dict")
    return value


def read_package(path: PathLike, map_location: Any = "cpu") -> ModelPackage:
    """Read and check a package written by :func:`write_package`.

    Raises:
      PackageError: the file is missing, not a zip archive, lacks a member, or a member is
        broken (the message names the file and the member).
    """
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path}: no such model package")
    if not zipfile.is_zipfile(path):
        raise PackageError(
            f"{path}: not a model package (not a zip archive; truncated, or not written by "
            "export.py / ASRModel.save_to)"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [m for m in (CONFIG, WEIGHTS, TOKENS) if m not in names]
            if missing:
                raise PackageError(
                    f"{path}: incomplete model package: {', '.join(missing)} missing "
                    f"(has {', '.join(sorted(names)) or 'nothing'}); export it again"
                )
            raw = {name: zf.read(name) for name in names}
    except (zipfile.BadZipFile, EOFError, OSError) as error:  # a CRC error, a cut-off member
        raise PackageError(f"{path}: damaged model package: {error}") from None
    try:
        config = json.loads(raw[CONFIG].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PackageError(f"{path}: {CONFIG} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise PackageError(f"{path}: {CONFIG} is not an icefall-lite model config")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise PackageError(
            f"{path}: package format version {config['format_version']} is newer than this "
            f"icefall-lite reads ({FORMAT_VERSION}); upgrade icefall-lite"
        )
    for key in ("model_family", "model_params", "features"):
        if key not in config:
            raise PackageError(f"{path}: {CONFIG} has no '{key}'")
    state_dict = _load_tensors(raw[WEIGHTS], WEIGHTS, path, map_location)
    normalization = None
    if NORMALIZATION in raw:
        normalization = _load_tensors(raw[NORMALIZATION], NORMALIZATION, path, map_location)
        if not {"mean", "std"} <= set(normalization):
            raise PackageError(f"{path}: {NORMALIZATION} needs 'mean' and 'std'")
    try:
        tokens = raw[TOKENS].decode("utf-8")
    except UnicodeDecodeError:
        raise PackageError(f"{path}: {TOKENS} is not UTF-8 text") from None
    return ModelPackage(
        config=config,
        state_dict=state_dict,
        tokens=tokens,
        bpe_model=raw.get(BPE),
        normalization=normalization,
    )
