"""LSTM transducer (Myrtle.ai / MLPerf RNN-T): LSTM encoder with frame stacking and time
reduction, an LSTM prediction network (a stateful decoder), the library's joiner."""

from icefall_lite.models.lstm_transducer.decoder import LstmDecoder
from icefall_lite.models.lstm_transducer.encoder import LstmEncoder, stack_frames
from icefall_lite.models.lstm_transducer.model import (
    ARCH_KEYS,
    FAMILY,
    LstmTransducer,
    add_lstm_chunk_arguments,
    add_lstm_transducer_arguments,
    add_lstm_transducer_model_arguments,
    build_lstm_transducer_model,
    check_lstm_transducer_arguments,
    resolve_lstm_params,
)
from icefall_lite.models.lstm_transducer.presets import LSTM_PRESETS, count_parameters
from icefall_lite.models.lstm_transducer.streaming import LstmStreamingEncoder

__all__ = [
    "ARCH_KEYS",
    "FAMILY",
    "LSTM_PRESETS",
    "LstmDecoder",
    "LstmEncoder",
    "LstmStreamingEncoder",
    "LstmTransducer",
    "add_lstm_chunk_arguments",
    "add_lstm_transducer_arguments",
    "add_lstm_transducer_model_arguments",
    "build_lstm_transducer_model",
    "check_lstm_transducer_arguments",
    "count_parameters",
    "resolve_lstm_params",
    "stack_frames",
]
