"""Acoustic models: one folder per family behind one interface (``interface.py``), the shared
stateless decoder, joiner and transducer/CTC wrapper, and the family registry (``registry``).

``build_model(params)`` builds the family ``params["model_family"]`` names (the Zipformer when
absent): ``zipformer``, ``lstm_transducer`` or ``conv_ctc`` (Jasper/QuartzNet CTC,
``conv_ctc/``). A family registers its architecture flags (what decoding and export take from
a checkpoint); training scripts add the loss weights as well: ``add_model_arguments`` and
``add_lstm_transducer_arguments`` add both, ``add_transducer_loss_arguments`` the weights alone.
"""

from icefall_lite.models import registry
from icefall_lite.models.asr_model import (
    AsrModel,
    add_model_arguments,
    add_transducer_head_arguments,
    add_transducer_loss_arguments,
    add_zipformer_model_arguments,
)
from icefall_lite.models.asr_model import build_model as build_zipformer_model
from icefall_lite.models.asr_model import check_model_arguments as check_zipformer_arguments
from icefall_lite.models.asr_model import transducer_loss_scales
from icefall_lite.models.conv_ctc import (
    add_conv_ctc_arguments,
    build_conv_ctc_model,
    check_conv_ctc_arguments,
)
from icefall_lite.models.decoder import Decoder
from icefall_lite.models.joiner import Joiner
from icefall_lite.models.lstm_transducer import (
    add_lstm_transducer_arguments,
    add_lstm_transducer_model_arguments,
    build_lstm_transducer_model,
    check_lstm_transducer_arguments,
)
from icefall_lite.models.registry import build_model, check_model_arguments, register_model_family

register_model_family(
    "zipformer", build_zipformer_model, add_zipformer_model_arguments, check_zipformer_arguments
)
register_model_family(
    "lstm_transducer",
    build_lstm_transducer_model,
    add_lstm_transducer_model_arguments,
    check_lstm_transducer_arguments,
)
register_model_family(
    "conv_ctc", build_conv_ctc_model, add_conv_ctc_arguments, check_conv_ctc_arguments
)

__all__ = [
    "AsrModel",
    "Decoder",
    "Joiner",
    "add_conv_ctc_arguments",
    "add_lstm_transducer_arguments",
    "add_lstm_transducer_model_arguments",
    "add_model_arguments",
    "add_transducer_head_arguments",
    "add_transducer_loss_arguments",
    "add_zipformer_model_arguments",
    "build_conv_ctc_model",
    "build_lstm_transducer_model",
    "build_model",
    "build_zipformer_model",
    "check_model_arguments",
    "register_model_family",
    "registry",
    "transducer_loss_scales",
]
