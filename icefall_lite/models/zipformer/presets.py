"""Zipformer2 size presets, command-line flags and the builder used by ``build_model``.

Presets (parameter counts of the whole pruned transducer with vocab 500, decoder_dim 512,
joiner_dim 512, as published for LibriSpeech in icefall):

======  =====  =========================================================
preset  count  use
======  =====  =========================================================
tiny    ~4.1M  unit tests and the embedded corpus on CPU (encoder + front end 2.75M)
small   23.3M  icefall's "small" Zipformer
medium  65.5M  icefall's default Zipformer (the icefall flag defaults)
large   148.4M icefall's "large" Zipformer
======  =====  =========================================================

Every per-stack flag (``--encoder-dim`` etc.) left unset takes the value of the
``--model-size`` preset; a flag that is given overrides the preset.
"""

import argparse
from typing import Any, Dict, List, Tuple

from torch import nn

from icefall_lite.models.zipformer.encoder import Zipformer2
from icefall_lite.models.zipformer.scaling import ScheduledFloat
from icefall_lite.models.zipformer.subsampling import Conv2dSubsampling
from icefall_lite.utils import str2bool

# Flag name (without dashes, with underscores) -> value, as comma-separated strings like icefall.
PRESETS: Dict[str, Dict[str, str]] = {
    "tiny": {
        "encoder_embed_channels": "32",
        "num_encoder_layers": "1,1,1,1,1,1",
        "downsampling_factor": "1,2,4,8,4,2",
        "feedforward_dim": "192,256,384,512,384,256",
        "num_heads": "4,4,4,4,4,4",
        "encoder_dim": "64,96,128,160,128,96",
        "query_head_dim": "16",
        "value_head_dim": "12",
        "pos_head_dim": "4",
        "pos_dim": "48",
        "encoder_unmasked_dim": "64,64,96,96,96,64",
        "cnn_module_kernel": "15,15,15,15,15,15",
    },
    "small": {
        "encoder_embed_channels": "128",
        "num_encoder_layers": "2,2,2,2,2,2",
        "downsampling_factor": "1,2,4,8,4,2",
        "feedforward_dim": "512,768,768,768,768,768",
        "num_heads": "4,4,4,8,4,4",
        "encoder_dim": "192,256,256,256,256,256",
        "query_head_dim": "32",
        "value_head_dim": "12",
        "pos_head_dim": "4",
        "pos_dim": "48",
        "encoder_unmasked_dim": "192,192,192,192,192,192",
        "cnn_module_kernel": "31,31,15,15,15,31",
    },
    "medium": {
        "encoder_embed_channels": "128",
        "num_encoder_layers": "2,2,3,4,3,2",
        "downsampling_factor": "1,2,4,8,4,2",
        "feedforward_dim": "512,768,1024,1536,1024,768",
        "num_heads": "4,4,4,8,4,4",
        "encoder_dim": "192,256,384,512,384,256",
        "query_head_dim": "32",
        "value_head_dim": "12",
        "pos_head_dim": "4",
        "pos_dim": "48",
        "encoder_unmasked_dim": "192,192,256,256,256,192",
        "cnn_module_kernel": "31,31,15,15,15,31",
    },
    "large": {
        "encoder_embed_channels": "128",
        "num_encoder_layers": "2,2,4,5,4,2",
        "downsampling_factor": "1,2,4,8,4,2",
        "feedforward_dim": "512,768,1536,2048,1536,768",
        "num_heads": "4,4,4,8,4,4",
        "encoder_dim": "192,256,512,768,512,256",
        "query_head_dim": "32",
        "value_head_dim": "12",
        "pos_head_dim": "4",
        "pos_dim": "48",
        "encoder_unmasked_dim": "192,192,256,320,256,192",
        "cnn_module_kernel": "31,31,15,15,15,31",
    },
}

DEFAULT_MODEL_SIZE = "medium"

# (flag key, help) for the per-stack flags, in icefall's order.
_STACK_FLAGS: List[Tuple[str, str]] = [
    ("num_encoder_layers", "Number of zipformer encoder layers per stack, comma separated."),
    (
        "downsampling_factor",
        "Frame-rate reduction of each encoder stack relative to the front end's output "
        "(which is already downsampled by 2); the number of entries sets the number of stacks.",
    ),
    ("feedforward_dim", "Feedforward dimension of the encoder layers, per stack."),
    ("num_heads", "Number of attention heads per stack: one int or one per stack."),
    ("encoder_dim", "Embedding dimension of each stack: one int or one per stack."),
    ("query_head_dim", "Query/key dimension per attention head: one int or one per stack."),
    ("value_head_dim", "Value dimension per attention head: one int or one per stack."),
    ("pos_head_dim", "Positional-encoding dimension per head: one int or one per stack."),
    (
        "encoder_unmasked_dim",
        "Channels of each stack never masked by training-time feature masking; "
        "must be <= the stack's --encoder-dim. One int or one per stack.",
    ),
    (
        "cnn_module_kernel",
        "Kernel size of the convolution modules in each stack (odd): one int or one per stack.",
    ),
]

_PER_STACK_KEYS = [key for key, _ in _STACK_FLAGS if key != "downsampling_factor"]


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def add_zipformer_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the Zipformer2 encoder flags (icefall's names) to ``parser``.

    Per-stack flags default to None, meaning "take it from --model-size".
    """
    group = parser.add_argument_group("Zipformer encoder")
    group.add_argument(
        "--model-size",
        type=str,
        default=DEFAULT_MODEL_SIZE,
        choices=sorted(PRESETS),
        help="Size preset for the encoder flags below that are not given explicitly: "
        "tiny (tests, CPU), small (23M), medium (65M, icefall's default), large (148M).",
    )
    for key, help_text in _STACK_FLAGS:
        group.add_argument(
            _flag(key),
            type=str,
            default=None,
            help=f"{help_text} Default: from --model-size " f"(medium: {PRESETS['medium'][key]}).",
        )
    group.add_argument(
        "--encoder-embed-channels",
        type=int,
        default=None,
        help="Channels of the front end's last convolution and its ConvNeXt block (icefall: "
        "128). Most of a small model's CPU time is spent there; the tiny preset uses 32. "
        f"Default: from --model-size (medium: {PRESETS['medium']['encoder_embed_channels']}).",
    )
    group.add_argument(
        "--pos-dim",
        type=int,
        default=None,
        help="Positional-encoding embedding dimension (even). Default: from --model-size "
        f"(medium: {PRESETS['medium']['pos_dim']}).",
    )
    group.add_argument(
        "--causal",
        type=str2bool,
        default=False,
        help="If True, build the chunk-causal (streaming) encoder.",
    )
    group.add_argument(
        "--chunk-size",
        type=str,
        default="16,32,64,-1",
        help="Chunk sizes (frames at 50 Hz, after the front end) drawn at random per batch in "
        "causal training; -1 means full context. Decoding uses the first entry. "
        "Ignored unless --causal 1.",
    )
    group.add_argument(
        "--left-context-frames",
        type=str,
        default="64,128,256,-1",
        help="Left contexts (frames at 50 Hz) drawn at random per batch in causal training, "
        "rounded to whole chunks; -1 means unlimited. Decoding uses the first entry. "
        "Ignored unless --causal 1.",
    )


def _get(params: Any, key: str, default: Any = None) -> Any:
    if isinstance(params, dict):
        return params.get(key, default)
    return getattr(params, key, default)


def _set(params: Any, key: str, value: Any) -> None:
    if isinstance(params, dict):
        params[key] = value
    else:
        setattr(params, key, value)


def parse_int_list(value: Any, flag: str) -> List[int]:
    """'1,2,4' / 4 / [1, 2] -> list of ints; a one-line ValueError naming ``flag`` otherwise."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [s.strip() for s in str(value).split(",")]
    try:
        return [int(v) for v in items]
    except (TypeError, ValueError):
        raise ValueError(f"{flag}: expected comma-separated integers, got '{value}'") from None


def resolve_zipformer_params(params: Any) -> Any:
    """Fill unset encoder flags in ``params`` from its ``model_size`` preset and validate them.

    ``params`` is an AttributeDict (or argparse.Namespace); it is updated in place (so logs and
    checkpoints show the values actually used) and returned. Raises a one-line ValueError
    naming the offending flag.
    """
    model_size = _get(params, "model_size") or DEFAULT_MODEL_SIZE
    if model_size not in PRESETS:
        raise ValueError(
            f"--model-size: unknown preset '{model_size}', expected one of {sorted(PRESETS)}"
        )
    preset = PRESETS[model_size]
    _set(params, "model_size", model_size)
    for key in [k for k, _ in _STACK_FLAGS] + ["pos_dim"]:
        if _get(params, key) is None:
            _set(params, key, preset[key])
    if _get(params, "encoder_embed_channels") is None:
        # Checkpoints from before this flag had icefall's 128 whatever the preset; a stored
        # model_size with no stored value is resolved by the caller (see stored_params).
        _set(params, "encoder_embed_channels", int(preset["encoder_embed_channels"]))
    if _get(params, "causal") is None:
        _set(params, "causal", False)
    for key, default in (("chunk_size", "16,32,64,-1"), ("left_context_frames", "64,128,256,-1")):
        if _get(params, key) is None:
            _set(params, key, default)
    _check_zipformer_params(params)
    return params


def _check_zipformer_params(params: Any) -> None:
    downsampling = parse_int_list(_get(params, "downsampling_factor"), "--downsampling-factor")
    num_stacks = len(downsampling)
    if any(d <= 0 for d in downsampling):
        raise ValueError(f"--downsampling-factor: entries must be positive, got {downsampling}")
    values: Dict[str, List[int]] = {}
    for key in _PER_STACK_KEYS:
        flag = _flag(key)
        items = parse_int_list(_get(params, key), flag)
        if len(items) not in (1, num_stacks):
            raise ValueError(
                f"{flag}: expected 1 or {num_stacks} values (one per --downsampling-factor "
                f"stack), got {len(items)}"
            )
        if any(v <= 0 for v in items):
            raise ValueError(f"{flag}: values must be positive, got {items}")
        values[key] = items * num_stacks if len(items) == 1 else items
    for kernel in values["cnn_module_kernel"]:
        if kernel % 2 == 0:
            raise ValueError(f"--cnn-module-kernel: kernel sizes must be odd, got {kernel}")
    for dim, unmasked in zip(values["encoder_dim"], values["encoder_unmasked_dim"]):
        if unmasked > dim:
            raise ValueError(
                f"--encoder-unmasked-dim: {unmasked} exceeds the stack's --encoder-dim {dim}"
            )
    pos_dim = _get(params, "pos_dim")
    try:
        pos_dim = int(pos_dim)
    except (TypeError, ValueError):
        raise ValueError(f"--pos-dim: expected an integer, got '{pos_dim}'") from None
    if pos_dim <= 0 or pos_dim % 2:
        raise ValueError(f"--pos-dim: must be a positive even number, got {pos_dim}")
    feature_dim = int(_get(params, "feature_dim", 80))
    if feature_dim < 7:
        raise ValueError(f"--feature-dim: the front end needs at least 7 bins, got {feature_dim}")

    chunk_sizes = parse_int_list(_get(params, "chunk_size"), "--chunk-size")
    left_contexts = parse_int_list(_get(params, "left_context_frames"), "--left-context-frames")
    if not _get(params, "causal"):
        return
    for chunk in chunk_sizes:
        if chunk == -1:
            continue
        if chunk <= 0 or any(chunk % d for d in downsampling) or chunk % 2:
            raise ValueError(
                f"--chunk-size: {chunk} must be -1 or a positive multiple of 2 and of every "
                f"--downsampling-factor entry ({downsampling})"
            )
    for frames in left_contexts:
        if frames != -1 and frames <= 0:
            raise ValueError(f"--left-context-frames: {frames} must be -1 or positive")
    # Every (chunk, left context) pair drawn in training must cover the convolution context.
    for chunk in chunk_sizes:
        for frames in left_contexts:
            if chunk == -1 or frames == -1:
                continue
            chunks = max(1, frames // chunk)
            for i, (kernel, ds) in enumerate(zip(values["cnn_module_kernel"], downsampling)):
                if chunk * chunks < (kernel // 2) * ds:
                    raise ValueError(
                        f"--left-context-frames: {frames} (with --chunk-size {chunk}) is shorter "
                        f"than the convolution context of stack {i}: "
                        f"({kernel} // 2) * {ds} = {(kernel // 2) * ds} frames"
                    )


def zipformer_output_dim(params: Any) -> int:
    """Width of the encoder output (max of --encoder-dim) for ``params`` (after resolving)."""
    resolve_zipformer_params(params)
    return max(parse_int_list(_get(params, "encoder_dim"), "--encoder-dim"))


def build_zipformer(params: Any) -> Tuple[nn.Module, Zipformer2]:
    """Build the front end and encoder described by ``params``.

    Reads the flags of :func:`add_zipformer_arguments` (resolving presets, see
    :func:`resolve_zipformer_params`) and ``feature_dim`` (default 80).

    Returns:
        ``(encoder_embed, encoder)``: a :class:`Conv2dSubsampling` mapping (N, T, feature_dim)
        to (N, (T - 7) // 2, encoder_dim[0]), and a :class:`Zipformer2` mapping time-major
        (T', N, encoder_dim[0]) to (ceil(T' / 2), N, max(encoder_dim)) (``encoder.output_dim``).
    """
    resolve_zipformer_params(params)

    def ints(key: str) -> List[int]:
        return parse_int_list(_get(params, key), _flag(key))

    encoder_dim = ints("encoder_dim")
    encoder_embed = Conv2dSubsampling(
        in_channels=int(_get(params, "feature_dim", 80)),
        out_channels=encoder_dim[0],
        layer3_channels=int(_get(params, "encoder_embed_channels")),
        dropout=ScheduledFloat((0.0, 0.3), (20000.0, 0.1)),
    )
    causal = bool(_get(params, "causal"))
    encoder = Zipformer2(
        output_downsampling_factor=2,
        downsampling_factor=tuple(ints("downsampling_factor")),
        num_encoder_layers=ints("num_encoder_layers"),
        encoder_dim=encoder_dim,
        encoder_unmasked_dim=ints("encoder_unmasked_dim"),
        query_head_dim=ints("query_head_dim"),
        pos_head_dim=ints("pos_head_dim"),
        value_head_dim=ints("value_head_dim"),
        pos_dim=int(_get(params, "pos_dim")),
        num_heads=ints("num_heads"),
        feedforward_dim=ints("feedforward_dim"),
        cnn_module_kernel=ints("cnn_module_kernel"),
        dropout=ScheduledFloat((0.0, 0.3), (20000.0, 0.1)),
        warmup_batches=4000.0,
        causal=causal,
        chunk_size=tuple(ints("chunk_size")) if causal else (-1,),
        left_context_frames=tuple(ints("left_context_frames")) if causal else (-1,),
    )
    return encoder_embed, encoder


def preset_params(model_size: str, **overrides: Any) -> Dict[str, Any]:
    """A plain dict of encoder flags for ``model_size`` (for tests and scripts), with
    ``overrides`` applied (keys as attribute names, e.g. ``causal=True``)."""
    params: Dict[str, Any] = {"model_size": model_size, "feature_dim": 80}
    params.update(overrides)
    return resolve_zipformer_params(params)


__all__ = [
    "DEFAULT_MODEL_SIZE",
    "PRESETS",
    "add_zipformer_arguments",
    "build_zipformer",
    "parse_int_list",
    "preset_params",
    "resolve_zipformer_params",
    "zipformer_output_dim",
]
