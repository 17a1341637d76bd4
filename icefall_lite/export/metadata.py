"""The metadata sherpa-onnx reads from exported Zipformer2 transducer files.

sherpa-onnx picks its model class from the encoder's ``model_type`` ("zipformer2"), reads
``vocab_size`` and ``context_size`` from the decoder, and for streaming builds the initial encoder
states from the encoder's per-stack lists (``encoder_dims``, ``num_encoder_layers``,
``query_head_dims``, ``value_head_dims``, ``num_heads``, ``cnn_module_kernels``,
``left_context_len``) and feeds ``T`` feature frames per chunk, advancing by ``decode_chunk_len``.
Lists are stored as comma-separated integers, every value as a string.
"""

from typing import Dict, List, Sequence, Union

from icefall_lite.models.zipformer.presets import parse_int_list
from icefall_lite.utils import AttributeDict

__all__ = [
    "MODEL_AUTHOR",
    "STREAMING_PAD_LENGTH",
    "decoder_meta_data",
    "int_list",
    "joiner_meta_data",
    "offline_encoder_meta_data",
    "streaming_encoder_meta_data",
]

MODEL_AUTHOR = "icefall-lite"

# Extra fbank frames a streaming chunk needs beyond its 2 * chunk_size: 7 for the front end's
# three unpadded time convolutions, 2 * 3 for its ConvNeXt look-ahead (3 frames at 50 Hz).
STREAMING_PAD_LENGTH = 7 + 2 * 3


def int_list(value: Union[str, int, Sequence[int]], num_stacks: int = 0) -> List[int]:
    """Parse an icefall per-stack flag (``"2,2,3"``, ``[2, 2, 3]`` or ``4``) with the encoder's
    own parser; a single value is repeated ``num_stacks`` times when ``num_stacks`` > 0."""
    values = parse_int_list(value, "encoder flag")
    if num_stacks > 0 and len(values) == 1:
        values = values * num_stacks
    if num_stacks > 0 and len(values) != num_stacks:
        raise ValueError(f"expected 1 or {num_stacks} comma-separated values, got {value!r}")
    return values


def _csv(values: Sequence[int]) -> str:
    return ",".join(str(int(v)) for v in values)


def offline_encoder_meta_data(comment: str = "non-streaming zipformer2") -> Dict[str, str]:
    """Metadata of a non-streaming encoder."""
    return {
        "model_type": "zipformer2",
        "version": "1",
        "model_author": MODEL_AUTHOR,
        "comment": comment,
    }


def streaming_encoder_meta_data(
    params: AttributeDict, chunk_size: int, left_context_frames: int
) -> Dict[str, str]:
    """Metadata of a streaming encoder exported for one chunk size and left context.

    Args:
      params: the model's params (icefall's Zipformer flag names: ``num_encoder_layers``,
        ``encoder_dim``, ``query_head_dim``, ``value_head_dim``, ``num_heads``,
        ``cnn_module_kernel``, ``downsampling_factor``; each a comma-separated string, list or
        int).
      chunk_size: frames per chunk at 50 Hz (after the front end); 16 = 320 ms.
      left_context_frames: attention left context at 50 Hz; each stack caches
        ``left_context_frames // downsampling_factor`` frames of it.
    """
    if chunk_size <= 0 or left_context_frames <= 0:
        raise ValueError(
            f"streaming export needs a positive --chunk-size and --left-context-frames, "
            f"got {chunk_size} and {left_context_frames}"
        )
    num_layers = int_list(params.num_encoder_layers)
    n = len(num_layers)
    downsampling = int_list(params.downsampling_factor, n)
    decode_chunk_len = chunk_size * 2  # fbank frames (100 Hz) per chunk
    return {
        "model_type": "zipformer2",
        "version": "1",
        "model_author": MODEL_AUTHOR,
        "comment": "streaming zipformer2",
        "decode_chunk_len": str(decode_chunk_len),
        "T": str(decode_chunk_len + STREAMING_PAD_LENGTH),
        "num_encoder_layers": _csv(num_layers),
        "encoder_dims": _csv(int_list(params.encoder_dim, n)),
        "cnn_module_kernels": _csv(int_list(params.cnn_module_kernel, n)),
        "left_context_len": _csv([left_context_frames // d for d in downsampling]),
        "query_head_dims": _csv(int_list(params.query_head_dim, n)),
        "value_head_dims": _csv(int_list(params.value_head_dim, n)),
        "num_heads": _csv(int_list(params.num_heads, n)),
    }


def decoder_meta_data(context_size: int, vocab_size: int) -> Dict[str, str]:
    """Metadata of the decoder file (sherpa-onnx reads both keys)."""
    return {"context_size": str(context_size), "vocab_size": str(vocab_size)}


def joiner_meta_data(joiner_dim: int) -> Dict[str, str]:
    """Metadata of the joiner file."""
    return {"joiner_dim": str(joiner_dim)}
