"""Jasper and QuartzNet convolutional CTC models (blocks, presets, builder and flags)."""

from icefall_lite.models.conv_ctc.blocks import ConvBlock, MaskedConv
from icefall_lite.models.conv_ctc.model import (
    BlockSpec,
    ConvCtcConfig,
    ConvCtcEncoder,
    ConvCtcModel,
)
from icefall_lite.models.conv_ctc.presets import (
    CONV_CTC_PRESETS,
    add_conv_ctc_arguments,
    build_conv_ctc_model,
    check_conv_ctc_arguments,
    conv_ctc_config,
)

__all__ = [
    "BlockSpec",
    "CONV_CTC_PRESETS",
    "ConvBlock",
    "ConvCtcConfig",
    "ConvCtcEncoder",
    "ConvCtcModel",
    "MaskedConv",
    "add_conv_ctc_arguments",
    "build_conv_ctc_model",
    "check_conv_ctc_arguments",
    "conv_ctc_config",
]
