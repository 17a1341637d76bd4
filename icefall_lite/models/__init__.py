"""Acoustic models: one folder per family behind one interface (``interface.py``), the shared
stateless decoder, joiner and transducer/CTC wrapper, and the family registry.

``build_model(params)`` builds the family ``params["model_family"]`` names (the Zipformer when
absent); ``add_model_arguments`` adds the Zipformer's flags, ``add_lstm_transducer_arguments``
the LSTM transducer's.
"""

from icefall_lite.models import registry
from icefall_lite.models.asr_model import (
    AsrModel,
    add_model_arguments,
    add_transducer_loss_arguments,
)
from icefall_lite.models.asr_model import build_model as build_zipformer_model
from icefall_lite.models.asr_model import check_model_arguments as check_zipformer_arguments
from icefall_lite.models.asr_model import transducer_loss_scales
from icefall_lite.models.decoder import Decoder
from icefall_lite.models.joiner import Joiner
from icefall_lite.models.lstm_transducer import (
    add_lstm_transducer_arguments,
    build_lstm_transducer_model,
    check_lstm_transducer_arguments,
)
from icefall_lite.models.registry import build_model, check_model_arguments, register_model_family

register_model_family(
    "zipformer", build_zipformer_model, add_model_arguments, check_zipformer_arguments
)
register_model_family(
    "lstm_transducer",
    build_lstm_transducer_model,
    add_lstm_transducer_arguments,
    check_lstm_transducer_arguments,
)

__all__ = [
    "AsrModel",
    "Decoder",
    "Joiner",
    "add_lstm_transducer_arguments",
    "add_model_arguments",
    "add_transducer_loss_arguments",
    "build_lstm_transducer_model",
    "build_model",
    "build_zipformer_model",
    "check_model_arguments",
    "register_model_family",
    "registry",
    "transducer_loss_scales",
]
