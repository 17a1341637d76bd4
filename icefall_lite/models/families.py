"""Which model family a run's params describe, and that family's builder, check and flags.

A checkpoint stores ``model_family`` (absent in Zipformer checkpoints written before there was
a second family, so absent means ``zipformer``); training, decoding and export build whatever
it names through :func:`build_model`. A family is three functions: ``build(params)`` -> a model
with the members of :mod:`icefall_lite.models.interface`, ``check(params)`` raising
``ValueError`` naming a bad flag, and ``add_arguments(parser)``.
"""

import argparse
from typing import Any, Callable, Dict, Mapping, NamedTuple

from torch import nn

from icefall_lite.models import asr_model, conv_ctc

__all__ = [
    "DEFAULT_FAMILY",
    "MODEL_FAMILIES",
    "ModelFamily",
    "build_model",
    "check_model_arguments",
    "model_family",
]


class ModelFamily(NamedTuple):
    build: Callable[[Any], nn.Module]
    check: Callable[[Any], None]
    add_arguments: Callable[[argparse.ArgumentParser], None]


def _add_zipformer_arguments(parser: argparse.ArgumentParser) -> None:
    # Architecture flags only: the transducer loss flags belong to training.
    asr_model.add_model_arguments(parser, include_loss=False)


MODEL_FAMILIES: Dict[str, ModelFamily] = {
    "zipformer": ModelFamily(
        asr_model.build_model, asr_model.check_model_arguments, _add_zipformer_arguments
    ),
    "conv_ctc": ModelFamily(
        conv_ctc.build_conv_ctc_model,
        conv_ctc.check_conv_ctc_arguments,
        conv_ctc.add_conv_ctc_arguments,
    ),
}
DEFAULT_FAMILY = "zipformer"


def model_family(params: Mapping[str, Any]) -> ModelFamily:
    """The family ``params["model_family"]`` names (``zipformer`` when absent)."""
    name = params.get("model_family") or DEFAULT_FAMILY
    if name not in MODEL_FAMILIES:
        raise ValueError(
            f"model_family {name!r}: expected one of {', '.join(sorted(MODEL_FAMILIES))}"
        )
    return MODEL_FAMILIES[name]


def build_model(params: Any) -> nn.Module:
    """The model of ``params``' family (see :func:`model_family`)."""
    return model_family(params).build(params)


def check_model_arguments(params: Any) -> None:
    """``ValueError`` naming a bad model flag of ``params``' family."""
    model_family(params).check(params)
