"""Acoustic models: encoders, the stateless decoder, the joiner and the transducer/CTC wrapper
(Zipformer), Jasper/QuartzNet CTC models (``conv_ctc/``), and the family table (``families``)."""

from icefall_lite.models.asr_model import AsrModel, add_model_arguments, transducer_loss_scales
from icefall_lite.models.decoder import Decoder
from icefall_lite.models.families import MODEL_FAMILIES, build_model, check_model_arguments
from icefall_lite.models.joiner import Joiner

__all__ = [
    "AsrModel",
    "Decoder",
    "Joiner",
    "MODEL_FAMILIES",
    "add_model_arguments",
    "build_model",
    "check_model_arguments",
    "transducer_loss_scales",
]
