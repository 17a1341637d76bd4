"""Acoustic models: encoders, the stateless decoder, the joiner and the transducer/CTC wrapper."""

from icefall_lite.models.asr_model import (
    AsrModel,
    add_model_arguments,
    build_model,
    check_model_arguments,
    transducer_loss_scales,
)
from icefall_lite.models.decoder import Decoder
from icefall_lite.models.joiner import Joiner

__all__ = [
    "AsrModel",
    "Decoder",
    "Joiner",
    "add_model_arguments",
    "build_model",
    "check_model_arguments",
    "transducer_loss_scales",
]
