"""Jasper / QuartzNet presets, the family's command-line flags and its builder.

Published sizes (NeMo's 64-bin features and 29 output classes: 28 characters + blank), which
``test/models/test_conv_ctc.py`` checks within 2 %:

=============  =======  ===========================================================
preset         params   architecture
=============  =======  ===========================================================
jasper10x5dr   333 M    10 blocks x 5 sub-blocks, full convolutions, dense residuals
quartznet5x5   6.7 M    5 blocks x 5, time-channel separable convolutions
quartznet15x5  18.9 M   15 blocks x 5 (each 5x5 block repeated 3 times), separable
cpu            ~0.7 M   QuartzNet-style, 128-256 channels, stride 3: the embedded corpus on a
                        2-core CPU (with 80-bin fbank and BPE 128)
=============  =======  ===========================================================
"""

import argparse
from typing import Any, Dict, Mapping

from icefall_lite.models.conv_ctc.model import BlockSpec, ConvCtcConfig, ConvCtcModel

__all__ = [
    "CONV_CTC_PRESETS",
    "add_conv_ctc_arguments",
    "build_conv_ctc_model",
    "check_conv_ctc_arguments",
    "conv_ctc_config",
]


def _quartznet(groups: int) -> ConvCtcConfig:
    """QuartzNet (groups x 5) x 5: five kinds of block (kernels 33-75), each repeated."""
    kinds = [(256, 33), (256, 39), (512, 51), (512, 63), (512, 75)]
    return ConvCtcConfig(
        prologue=BlockSpec(256, 33, stride=2),
        blocks=tuple(BlockSpec(c, k, repeat=5) for c, k in kinds for _ in range(groups)),
        epilogue=(BlockSpec(512, 87, dilation=2), BlockSpec(1024, 1)),
        separable=True,
    )


def _jasper10x5dr() -> ConvCtcConfig:
    kinds = [(256, 11, 0.2), (384, 13, 0.2), (512, 17, 0.2), (640, 21, 0.3), (768, 25, 0.3)]
    return ConvCtcConfig(
        prologue=BlockSpec(256, 11, stride=2, dropout=0.2),
        blocks=tuple(BlockSpec(c, k, repeat=5, dropout=p) for c, k, p in kinds for _ in range(2)),
        epilogue=(BlockSpec(896, 29, dilation=2, dropout=0.4), BlockSpec(1024, 1, dropout=0.4)),
        separable=False,
        dense_residual=True,
    )


def _cpu() -> ConvCtcConfig:
    # Stride 3 (33 frames/s) keeps ~6 frames per BPE-128 token of the synth corpus, enough for
    # CTC's blanks between repeats, at a third of the work; R=3 sub-blocks and kernels 11-23
    # still see ~2.5 s of context on each side.
    kinds = [(128, 11), (128, 13), (160, 15), (192, 17), (192, 19)]
    return ConvCtcConfig(
        prologue=BlockSpec(128, 11, stride=3, dropout=0.05),
        blocks=tuple(BlockSpec(c, k, repeat=3, dropout=0.05) for c, k in kinds),
        epilogue=(BlockSpec(256, 23, dilation=2, dropout=0.05), BlockSpec(256, 1, dropout=0.05)),
        separable=True,
    )


CONV_CTC_PRESETS: Dict[str, ConvCtcConfig] = {
    "jasper10x5dr": _jasper10x5dr(),
    "quartznet5x5": _quartznet(1),
    "quartznet15x5": _quartznet(3),
    "cpu": _cpu(),
}


def add_conv_ctc_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags :func:`build_conv_ctc_model` reads (``--conv-preset``, ``--conv-dropout``)."""
    group = parser.add_argument_group("Jasper/QuartzNet CTC model")
    group.add_argument(
        "--conv-preset",
        type=str,
        default="cpu",
        choices=sorted(CONV_CTC_PRESETS),
        help="Architecture: jasper10x5dr (333M), quartznet15x5 (18.9M), quartznet5x5 (6.7M), "
        "cpu (~0.7M, the synth corpus on a CPU).",
    )
    group.add_argument(
        "--conv-dropout",
        type=float,
        default=-1.0,
        help="Dropout after every ReLU; negative: the preset's own.",
    )


def check_conv_ctc_arguments(params: Mapping[str, Any]) -> None:
    """``ValueError`` naming the bad flag."""
    preset = params.get("conv_preset", "cpu")
    if preset not in CONV_CTC_PRESETS:
        raise ValueError(
            f"--conv-preset {preset}: expected one of {', '.join(sorted(CONV_CTC_PRESETS))}"
        )
    if params.get("conv_dropout", -1.0) >= 1.0:
        raise ValueError(f"--conv-dropout must be below 1, got {params['conv_dropout']}")


def conv_ctc_config(params: Mapping[str, Any]) -> ConvCtcConfig:
    """The preset ``--conv-preset`` names, with ``--conv-dropout`` applied if not negative."""
    check_conv_ctc_arguments(params)
    config = CONV_CTC_PRESETS[params.get("conv_preset", "cpu")]
    dropout = params.get("conv_dropout", -1.0)
    if dropout < 0:
        return config

    def with_dropout(spec: BlockSpec) -> BlockSpec:
        return BlockSpec(
            spec.filters, spec.kernel, spec.repeat, spec.stride, spec.dilation, dropout
        )

    return ConvCtcConfig(
        prologue=with_dropout(config.prologue),
        blocks=tuple(with_dropout(b) for b in config.blocks),
        epilogue=tuple(with_dropout(b) for b in config.epilogue),
        separable=config.separable,
        dense_residual=config.dense_residual,
    )


def build_conv_ctc_model(params: Mapping[str, Any]) -> ConvCtcModel:
    """The Jasper/QuartzNet CTC model ``params`` describe: the flags of
    :func:`add_conv_ctc_arguments`, ``feature_dim`` and ``vocab_size`` (blank id 0)."""
    if params.get("blank_id", 0) != 0:
        raise ValueError(f"conv CTC models use blank id 0, the tokenizer has {params['blank_id']}")
    return ConvCtcModel(
        feature_dim=params.get("feature_dim", 80),
        config=conv_ctc_config(params),
        vocab_size=params["vocab_size"],
    )
