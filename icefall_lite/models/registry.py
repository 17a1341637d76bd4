"""Model families by name: what the training loop, decoding and export build from ``params``.

A checkpoint's params name the family (``model_family``; the Zipformer when absent, as in every
checkpoint written before there was a second family), so decode and export scripts rebuild the
right model from a checkpoint alone; a model package (``icefall_lite.api``) names it in its
config. The families shipped here register in ``icefall_lite/models/__init__.py``.
"""

import argparse
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from torch import nn

from icefall_lite.errors import UsageError
from icefall_lite.utils import AttributeDict

__all__ = [
    "DEFAULT_FAMILY",
    "ModelFamily",
    "UnknownModelFamily",
    "build_model",
    "check_model_arguments",
    "get_model_family",
    "model_families",
    "register_model_family",
]

DEFAULT_FAMILY = "zipformer"


@dataclass(frozen=True)
class ModelFamily:
    """A family's builder, flags and flag check.

    Attributes:
      name: the ``model_family`` value in params and checkpoints.
      build: params -> model (see :mod:`icefall_lite.models.interface`).
      add_arguments: adds the family's flags to a parser (None: it has none).
      check_arguments: raises a one-line ``ValueError`` for a bad flag (None: no check).
    """

    name: str
    build: Callable[[AttributeDict], nn.Module]
    add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None
    check_arguments: Optional[Callable[[AttributeDict], None]] = None


_FAMILIES: Dict[str, ModelFamily] = {}


class UnknownModelFamily(UsageError):
    """Params, a checkpoint or a package name a model family nobody registered (a
    ``ValueError``, as every bad flag)."""


def register_model_family(
    name: str,
    build_fn: Callable[[AttributeDict], nn.Module],
    add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None,
    check_arguments: Optional[Callable[[AttributeDict], None]] = None,
) -> None:
    """Make ``name`` buildable; registering a name again replaces it."""
    _FAMILIES[name] = ModelFamily(name, build_fn, add_arguments, check_arguments)


def model_families() -> List[str]:
    """Registered names."""
    return sorted(_FAMILIES)


def get_model_family(params_or_name) -> ModelFamily:
    """The family a name, or ``params["model_family"]`` (default Zipformer), names."""
    if isinstance(params_or_name, str):
        name = params_or_name
    else:
        name = params_or_name.get("model_family") or DEFAULT_FAMILY
    if name not in _FAMILIES:
        raise UnknownModelFamily(
            f"unknown model family {name!r}; known: {', '.join(model_families())}"
        )
    return _FAMILIES[name]


def build_model(params: AttributeDict) -> nn.Module:
    """Build the model of ``params["model_family"]`` (default: the Zipformer)."""
    return get_model_family(params).build(params)


def check_model_arguments(params: AttributeDict) -> None:
    """Check (and complete, e.g. from a size preset) the flags of the family of ``params``."""
    family = get_model_family(params)
    if family.check_arguments is not None:
        family.check_arguments(params)
