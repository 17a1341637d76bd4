"""Model families by name: how a model package (or any caller holding only a config) builds the
model its params describe, without knowing the family's builder.

A family registers a builder ``build_fn(params) -> nn.Module`` whose model has the members of
:mod:`icefall_lite.models.interface`. The families shipped with icefall-lite are listed in
``_BUILTIN_FAMILIES`` as ``module:function`` and imported only when first asked for (so importing
the registry loads no model code); a family living elsewhere calls :func:`register_model_family`.
"""

import importlib
from typing import Any, Callable, Dict, List, Mapping

from torch import nn

from icefall_lite.errors import UsageError
from icefall_lite.utils import AttributeDict

__all__ = ["UnknownModelFamily", "build_model", "model_families", "register_model_family"]

BuildFn = Callable[[AttributeDict], nn.Module]

# name -> "module:function"; a new family shipped here adds its line.
_BUILTIN_FAMILIES: Dict[str, str] = {
    "zipformer": "icefall_lite.models.asr_model:build_model",
}

_REGISTERED: Dict[str, BuildFn] = {}


class UnknownModelFamily(UsageError):
    """A config names a model family nobody registered."""


def register_model_family(name: str, build_fn: BuildFn, replace: bool = False) -> None:
    """Make ``name`` buildable by :func:`build_model`.

    Args:
      name: the family's name as configs store it (``"zipformer"``).
      build_fn: params -> model (an ``nn.Module`` with the model interface).
      replace: allow replacing an existing registration (else ``ValueError``).
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"a model family name must be a non-empty string, got {name!r}")
    if not replace and (name in _REGISTERED or name in _BUILTIN_FAMILIES):
        raise ValueError(f"model family {name!r} is already registered")
    _REGISTERED[name] = build_fn


def model_families() -> List[str]:
    """Names of every family that can be built, sorted."""
    return sorted(set(_REGISTERED) | set(_BUILTIN_FAMILIES))


def _builder(family: str) -> BuildFn:
    if family in _REGISTERED:
        return _REGISTERED[family]
    if family in _BUILTIN_FAMILIES:
        module_name, function = _BUILTIN_FAMILIES[family].split(":")
        return getattr(importlib.import_module(module_name), function)
    raise UnknownModelFamily(
        f"unknown model family {family!r}; known: {', '.join(model_families())}"
    )


def build_model(family: str, params: Mapping[str, Any]) -> nn.Module:
    """Build the model of ``family`` that ``params`` describe.

    Raises:
      UnknownModelFamily: nobody registered ``family``.
    """
    return _builder(family)(AttributeDict(params))
