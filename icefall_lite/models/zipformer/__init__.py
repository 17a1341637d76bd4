"""Zipformer2 encoder, its Conv2d front end, size presets and streaming helpers."""

from icefall_lite.models.zipformer.encoder import Zipformer2
from icefall_lite.models.zipformer.presets import (
    PRESETS,
    add_zipformer_arguments,
    build_zipformer,
    preset_params,
    resolve_zipformer_params,
    zipformer_output_dim,
)
from icefall_lite.models.zipformer.scaling import ScheduledFloat, set_batch_count
from icefall_lite.models.zipformer.streaming import ZipformerStreamingEncoder
from icefall_lite.models.zipformer.subsampling import Conv2dSubsampling

__all__ = [
    "Conv2dSubsampling",
    "PRESETS",
    "ScheduledFloat",
    "Zipformer2",
    "ZipformerStreamingEncoder",
    "add_zipformer_arguments",
    "build_zipformer",
    "preset_params",
    "resolve_zipformer_params",
    "set_batch_count",
    "zipformer_output_dim",
]
