"""Build and load the model a decode/export script asks for with ``--epoch/--iter/--avg/
--use-averaged-model``: the files are resolved once (:func:`resolve_model_params`), their
params complete the command line's, and the same files are then loaded
(:func:`build_averaged_model`).

The architecture comes from the params stored in the checkpoint, so decoding needs no repeated
model flags; a model flag given on the command line must agree with the checkpoint (a
contradiction is an error). Settings that are decoding choices rather than architecture (the chunk
size and left context of a causal encoder, the BPE model's path) may differ and then override the
stored values.
"""

import argparse
import copy
import logging
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from icefall_lite.checkpoint import (
    load_checkpoint_files,
    read_checkpoint,
    resolve_epoch_checkpoints,
    resolve_iter_checkpoints,
    stored_params,
)
from icefall_lite.errors import UsageError
from icefall_lite.models import registry
from icefall_lite.utils import AttributeDict

# Params a model needs that are not command-line flags of the model (they come from the data,
# or, for model_family, from the recipe that trained it).
MODEL_DATA_KEYS = ("vocab_size", "blank_id", "feature_dim", "model_family")
# Taken from the checkpoint unless given on the command line, where they may differ: the
# chunk size and left context a causal model is decoded with, and where its BPE model lives.
OVERRIDABLE_KEYS = ("chunk_size", "left_context_frames", "bpe_model")


def add_tracked_arguments(
    parser: argparse.ArgumentParser, *adders: Callable[[argparse.ArgumentParser], None]
) -> List[str]:
    """Call each ``adder(parser)`` and return the ``dest`` names of the options they added
    (e.g. ``add_model_arguments``: the keys checked against the checkpoint)."""
    before = {action.dest for action in parser._actions}
    for add in adders:
        add(parser)
    return [a.dest for a in parser._actions if a.dest not in before and a.dest != "help"]


def explicit_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Dict[str, Any]:
    """The options actually written on the command line ``argv`` (defaults left out),
    as ``{dest: parsed value}``."""
    bare = copy.deepcopy(parser)
    for action in bare._actions:
        action.default = argparse.SUPPRESS
    namespace, _ = bare.parse_known_args(list(argv))
    return vars(namespace)


def _as_list(value: Any) -> Optional[List[str]]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",")]
    return None


def same_setting(given: Any, stored: Any) -> bool:
    """Whether a flag value equals the stored one: ``"4"`` vs ``4``, ``"2,2"`` vs ``[2, 2]``,
    and a single value vs the same value repeated per stack (``"4"`` vs ``"4,4,4"``) agree."""
    if given == stored or str(given).strip() == str(stored).strip():
        return True
    given_list = _as_list(given) or [str(given).strip()]
    stored_list = _as_list(stored) or [str(stored).strip()]
    if len(given_list) == 1 and len(set(stored_list)) == 1:
        return given_list[0] == stored_list[0]
    if len(stored_list) == 1 and len(set(given_list)) == 1:
        return given_list[0] == stored_list[0]
    return given_list == stored_list


def apply_checkpoint_params(
    params: AttributeDict,
    stored: Mapping[str, Any],
    model_keys: Iterable[str],
    explicit: Mapping[str, Any],
    source: str,
) -> None:
    """Copy the architecture params from ``stored`` into ``params`` (in place).

    Args:
      model_keys: the model flags' names (``add_tracked_arguments``); ``MODEL_DATA_KEYS`` and
        ``OVERRIDABLE_KEYS`` are always included.
      explicit: options given on the command line (``explicit_arguments``).
      source: checkpoint file name, for messages.
    Raises:
      ValueError naming the flag, when an explicit model flag contradicts the checkpoint.
    """
    keys = list(dict.fromkeys(list(model_keys) + list(MODEL_DATA_KEYS) + list(OVERRIDABLE_KEYS)))
    for key in keys:
        if key not in stored:
            if key in params:
                logging.warning(f"{source} has no '{key}'; using {params[key]!r}")
            continue
        if key in explicit:
            if key in OVERRIDABLE_KEYS:
                continue  # a decoding choice: keep the command line's
            if not same_setting(explicit[key], stored[key]):
                raise UsageError(
                    f"--{key.replace('_', '-')} {explicit[key]} contradicts the checkpoint "
                    f"{source}, which was trained with {stored[key]!r}; drop the flag"
                )
        params[key] = stored[key]


def checkpoint_files(params: Mapping[str, Any]) -> List[str]:
    """Files ``--epoch/--iter/--avg/--use-averaged-model`` refer to (oldest first); raises
    ``CheckpointError`` listing the existing ones when some are missing."""
    if params.get("iter", 0) > 0:
        files = resolve_iter_checkpoints(
            params["exp_dir"], params["iter"], params["avg"], params["use_averaged_model"]
        )
    else:
        files = resolve_epoch_checkpoints(
            params["exp_dir"], params["epoch"], params["avg"], params["use_averaged_model"]
        )
    return [str(f) for f in files]


def resolve_model_params(
    params: AttributeDict,
    model_keys: Iterable[str],
    explicit: Optional[Mapping[str, Any]] = None,
) -> List[str]:
    """Find the checkpoints ``params`` selects and copy the architecture params of the newest
    into ``params`` (see :func:`apply_checkpoint_params`). Returns the files (oldest first).

    Args:
      params: needs ``exp_dir``, ``epoch``, ``iter``, ``avg``, ``use_averaged_model``.
      model_keys: names of the model flags (checked against and taken from the checkpoint).
      explicit: options given on the command line; model flags among them must agree with the
        checkpoint.
    """
    files = checkpoint_files(params)
    newest = files[-1]
    stored = stored_params(read_checkpoint(newest))
    apply_checkpoint_params(params, stored, model_keys, explicit or {}, newest)
    return files


def inference_params() -> AttributeDict:
    """The fixed settings of the decode, streaming-decode and export scripts (their
    ``get_params()``); the model's own come from the checkpoint."""
    return AttributeDict({"feature_dim": 80, "blank_id": 0})


def model_flag_names() -> List[str]:
    """``dest`` names of every registered model family's architecture flags (those checked
    against and taken from checkpoints; a family's flags are simply absent from another's
    checkpoint). The training-loss weights are not among them: decoding has flags of its own
    under some of their names (``--lm-scale`` of language-model fusion)."""
    names: List[str] = []
    for name in registry.model_families():
        add = registry.get_model_family(name).add_arguments
        if add is not None:
            parser = argparse.ArgumentParser(conflict_handler="resolve")
            names += add_tracked_arguments(parser, add)
    return list(dict.fromkeys(names))


def build_averaged_model(
    params: AttributeDict,
    build_model: Callable[[AttributeDict], nn.Module],
    device: Union[str, torch.device] = "cpu",
    files: Optional[Sequence[str]] = None,
) -> nn.Module:
    """Build the model from ``params`` (already resolved) and load the weights selected by
    ``--epoch/--iter/--avg/--use-averaged-model``.

    Args:
      files: what :func:`resolve_model_params` returned (resolved only if not given).
    Returns:
      The model on ``device``, in eval mode.
    """
    model = build_model(params)
    files = list(files) if files is not None else checkpoint_files(params)
    load_checkpoint_files(
        model,
        files,
        params["use_averaged_model"],
        device="cpu",
        use_ema=bool(params.get("use_ema", False)),
    )
    num_params = sum(p.numel() for p in model.parameters())
    logging.info(f"Loaded {files} ({num_params / 1e6:.2f}M parameters)")
    return model.to(device).eval()


def load_model_for_inference(
    params: AttributeDict,
    build_model: Callable[[AttributeDict], nn.Module],
    model_keys: Iterable[str],
    explicit: Optional[Mapping[str, Any]] = None,
    device: Union[str, torch.device] = "cpu",
) -> nn.Module:
    """:func:`resolve_model_params` then :func:`build_averaged_model` on the same files."""
    files = resolve_model_params(params, model_keys, explicit)
    return build_averaged_model(params, build_model, device, files)
