"""ONNX export of a transducer as three files (encoder, decoder, joiner), the layout sherpa-onnx
and icefall use.

The joiner's two input projections are folded into the other two models, so at run time each
encoder frame and each decoder output is projected once, and the joiner file is only
``output_linear(tanh(encoder_out + decoder_out))``:

=========  ==========================================  ============================================
file       inputs                                      outputs
=========  ==========================================  ============================================
encoder    ``x`` (N, T, 80) float32,                   ``encoder_out`` (N, T', joiner_dim),
           ``x_lens`` (N,) int64                       ``encoder_out_lens`` (N,) int64
streaming  ``x`` (N, T, 80), then the state tensors    ``encoder_out`` (N, T', joiner_dim), then
encoder    (see :mod:`icefall_lite.streaming.states`)  ``new_<state name>`` for each state
decoder    ``y`` (N, context_size) int64               ``decoder_out`` (N, joiner_dim)
joiner     ``encoder_out``, ``decoder_out``            ``logit`` (N, vocab_size)
           (N, joiner_dim) each
=========  ==========================================  ============================================

Metadata (see :mod:`icefall_lite.export.metadata`) is stored in each file's ``metadata_props``.
"""

import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from icefall_lite.utils import publish_file

__all__ = [
    "OnnxDecoder",
    "OnnxEncoder",
    "OnnxJoiner",
    "OnnxStreamingEncoder",
    "add_meta_data",
    "export_decoder_onnx",
    "export_encoder_onnx",
    "export_joiner_onnx",
    "export_streaming_encoder_onnx",
    "export_onnx_model",
    "quantize_int8",
    "read_meta_data",
    "streaming_state_names",
]

PathLike = Union[str, Path]

# opset 13 has every operator the Zipformer needs; sherpa-onnx's onnxruntime runs it.
DEFAULT_OPSET = 13


class OnnxEncoder(nn.Module):
    """Front end + encoder + the joiner's encoder projection.

    Args:
      model: an ``AsrModel`` (uses ``forward_encoder`` and ``joiner.encoder_proj``).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        """x: (N, T, 80) fbank, x_lens: (N,) int64 ->
        (N, T', joiner_dim) projected encoder output and its (N,) int64 lengths."""
        encoder_out, encoder_out_lens = self.model.forward_encoder(x, x_lens)
        return self.model.joiner.encoder_proj(encoder_out), encoder_out_lens.to(torch.int64)


class OnnxStreamingEncoder(nn.Module):
    """Chunk-wise front end + encoder + the joiner's encoder projection (sherpa-onnx's layout).

    The graph inputs are ``x`` (N, T, 80), with T = decode_chunk_len + pad_length frames, all
    valid (sherpa-onnx feeds whole chunks only), then the state tensors; the outputs are
    ``encoder_out`` (N, chunk_size // 2, joiner_dim) and the new states, in the same order.

    Args:
      streaming_encoder: ``ZipformerStreamingEncoder`` of the causal model.
      encoder_proj: the joiner's ``encoder_proj`` Linear.
    """

    def __init__(self, streaming_encoder: nn.Module, encoder_proj: nn.Module) -> None:
        super().__init__()
        self.streaming_encoder = streaming_encoder
        self.encoder_proj = encoder_proj
        self.embed_channels = streaming_encoder.encoder_embed.layer3_channels

    def forward(self, x: Tensor, *states: Tensor) -> Tuple[Tensor, ...]:
        x_lens = torch.full((x.size(0),), x.size(1), dtype=torch.int64, device=x.device)
        states = list(states)
        # embed_states is (N, SHERPA_EMBED_CHANNELS, 3, W) in the graph, whatever the model's
        # front-end width: the model reads its first channels and the rest stay zero.
        states[-2] = states[-2][:, : self.embed_channels]
        encoder_out, _, new_states = self.streaming_encoder(x, x_lens, states)
        new_states[-2] = pad_embed_state(new_states[-2])
        return (self.encoder_proj(encoder_out), *new_states)


# sherpa-onnx makes the streaming front end's initial cache (embed_states) itself, with icefall's
# 128 channels; a model with a narrower front end (--encoder-embed-channels) is exported with
# its cache zero-padded to that width, so every streaming export runs in sherpa-onnx.
SHERPA_EMBED_CHANNELS = 128


def pad_embed_state(embed_state: Tensor) -> Tensor:
    """(N, C, 3, W) front-end cache -> (N, max(C, 128), 3, W), zero channels appended."""
    missing = SHERPA_EMBED_CHANNELS - embed_state.size(1)
    if missing <= 0:
        return embed_state
    return torch.nn.functional.pad(embed_state, (0, 0, 0, 0, 0, missing))


def streaming_state_names(num_layers: int) -> List[str]:
    """Graph names of the streaming state tensors, in order (``num_layers``: all stacks)."""
    names: List[str] = []
    for i in range(num_layers):
        names += [
            f"cached_key_{i}",
            f"cached_nonlin_attn_{i}",
            f"cached_val1_{i}",
            f"cached_val2_{i}",
            f"cached_conv1_{i}",
            f"cached_conv2_{i}",
        ]
    return names + ["embed_states", "processed_lens"]


def export_streaming_encoder_onnx(
    streaming_encoder: nn.Module,
    encoder_proj: nn.Module,
    filename: PathLike,
    meta_data: Dict[str, str],
    opset_version: int = DEFAULT_OPSET,
) -> None:
    """Export the chunk-wise encoder (see :class:`OnnxStreamingEncoder`); the batch axis of
    every input and output is dynamic. ``meta_data`` from
    :func:`icefall_lite.export.metadata.streaming_encoder_meta_data`."""
    wrapper = OnnxStreamingEncoder(streaming_encoder, encoder_proj)
    num_layers = sum(streaming_encoder.encoder.num_encoder_layers)
    names = streaming_state_names(num_layers)
    batch_size = 1
    states = streaming_encoder.get_init_states(batch_size)
    states[-2] = pad_embed_state(states[-2])
    frames = streaming_encoder.decode_chunk_len + streaming_encoder.pad_length
    x = torch.zeros(batch_size, frames, _feature_dim_of(streaming_encoder.encoder_embed))
    dynamic_axes = {"x": {0: "N"}, "encoder_out": {0: "N"}}
    for name, dim in zip(names, streaming_encoder.state_batch_dims):
        dynamic_axes[name] = {dim: "N"}
        dynamic_axes[f"new_{name}"] = {dim: "N"}
    export_onnx_model(
        wrapper,
        (x, *states),
        filename,
        input_names=["x"] + names,
        output_names=["encoder_out"] + [f"new_{n}" for n in names],
        dynamic_axes=dynamic_axes,
        meta_data=meta_data,
        opset_version=opset_version,
    )


class OnnxDecoder(nn.Module):
    """Stateless decoder + the joiner's decoder projection, for one step of a search.

    Args:
      decoder: ``Decoder`` (``context_size``, ``forward(y, need_pad)``).
      decoder_proj: the joiner's ``decoder_proj`` Linear.
    """

    def __init__(self, decoder: nn.Module, decoder_proj: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder
        self.decoder_proj = decoder_proj

    def forward(self, y: Tensor) -> Tensor:
        """y: (N, context_size) int64 token history (-1 = none) -> (N, joiner_dim)."""
        decoder_out = self.decoder(y, need_pad=False)  # (N, 1, decoder_dim)
        return self.decoder_proj(decoder_out.squeeze(1))


class OnnxJoiner(nn.Module):
    """The joiner after its input projections: ``output_linear(tanh(enc + dec))``."""

    def __init__(self, joiner: nn.Module) -> None:
        super().__init__()
        self.joiner = joiner

    def forward(self, encoder_out: Tensor, decoder_out: Tensor) -> Tensor:
        """encoder_out, decoder_out: (N, joiner_dim) projected -> (N, vocab_size) logits."""
        return self.joiner(encoder_out, decoder_out, project_input=False)


def add_meta_data(filename: PathLike, meta_data: Dict[str, str]) -> None:
    """Store ``meta_data`` in the model's ``metadata_props`` (rewrites the file atomically).

    Args:
      filename: an existing .onnx file.
      meta_data: string keys and values (lists are written comma-separated by the caller).
    """
    import onnx

    model = onnx.load(str(filename))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in meta_data.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            entry = model.metadata_props.add()
            entry.key = key
            entry.value = str(value)
    _atomic_onnx_save(model, filename)


def read_meta_data(filename: PathLike) -> Dict[str, str]:
    """The ``metadata_props`` of an .onnx file as a dict."""
    import onnx

    model = onnx.load(str(filename), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _atomic_onnx_save(model, filename: PathLike) -> None:
    import onnx

    filename = Path(filename)
    fd, tmp = tempfile.mkstemp(prefix=f".{filename.name}.", suffix=".tmp", dir=filename.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        publish_file(tmp, filename)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def export_onnx_model(
    module: nn.Module,
    args: Tuple[Tensor, ...],
    filename: PathLike,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Dict[str, Dict[int, str]],
    meta_data: Optional[Dict[str, str]] = None,
    opset_version: int = DEFAULT_OPSET,
) -> None:
    """Trace ``module`` on ``args`` and write it as ONNX (TorchScript-based exporter), then add
    the metadata. The file appears atomically: a crash leaves no half-written model.

    Args:
      module: in eval mode.
      args: example inputs (their sizes only matter on axes not named in ``dynamic_axes``).
      filename: the .onnx file to write.
      input_names, output_names: graph input/output names, in order.
      dynamic_axes: ``{name: {axis: axis_name}}`` for axes whose size may change at run time.
      meta_data: written into ``metadata_props``.
      opset_version: ONNX opset.
    """
    filename = Path(filename)
    filename.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    fd, tmp = tempfile.mkstemp(prefix=f".{filename.name}.", suffix=".onnx", dir=filename.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                args,
                tmp,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                opset_version=opset_version,
                do_constant_folding=True,
                dynamo=False,
            )
        if meta_data:
            add_meta_data(tmp, meta_data)
        publish_file(tmp, filename)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    logging.info(f"Wrote {filename}")


def export_encoder_onnx(
    model: nn.Module,
    filename: PathLike,
    meta_data: Dict[str, str],
    num_frames: int = 100,
    opset_version: int = DEFAULT_OPSET,
) -> None:
    """Export the non-streaming encoder (see the module docstring for its inputs and outputs).

    Args:
      model: ``AsrModel`` in eval mode.
      filename: e.g. ``exp/encoder-epoch-30-avg-9.onnx``.
      meta_data: from :func:`icefall_lite.export.metadata.offline_encoder_meta_data`.
      num_frames: length of the example input used for tracing (>= 7 + a few).
    """
    feature_dim = _feature_dim(model)
    x = torch.zeros(1, num_frames, feature_dim, dtype=torch.float32)
    x_lens = torch.tensor([num_frames], dtype=torch.int64)
    export_onnx_model(
        OnnxEncoder(model),
        (x, x_lens),
        filename,
        input_names=["x", "x_lens"],
        output_names=["encoder_out", "encoder_out_lens"],
        dynamic_axes={
            "x": {0: "N", 1: "T"},
            "x_lens": {0: "N"},
            "encoder_out": {0: "N", 1: "T"},
            "encoder_out_lens": {0: "N"},
        },
        meta_data=meta_data,
        opset_version=opset_version,
    )


def export_decoder_onnx(
    decoder: nn.Module,
    decoder_proj: nn.Module,
    filename: PathLike,
    meta_data: Dict[str, str],
    opset_version: int = DEFAULT_OPSET,
) -> None:
    """Export ``decoder`` + ``decoder_proj``: input ``y`` (N, context_size) int64, output
    ``decoder_out`` (N, joiner_dim). ``meta_data`` needs ``context_size`` and ``vocab_size``."""
    y = torch.zeros(2, decoder.context_size, dtype=torch.int64)
    export_onnx_model(
        OnnxDecoder(decoder, decoder_proj),
        (y,),
        filename,
        input_names=["y"],
        output_names=["decoder_out"],
        dynamic_axes={"y": {0: "N"}, "decoder_out": {0: "N"}},
        meta_data=meta_data,
        opset_version=opset_version,
    )


def export_joiner_onnx(
    joiner: nn.Module,
    filename: PathLike,
    meta_data: Dict[str, str],
    opset_version: int = DEFAULT_OPSET,
) -> None:
    """Export the joiner after its projections: inputs ``encoder_out`` and ``decoder_out``
    (N, joiner_dim), output ``logit`` (N, vocab_size). ``meta_data`` needs ``joiner_dim``."""
    joiner_dim = joiner.output_linear.in_features
    encoder_out = torch.zeros(2, joiner_dim, dtype=torch.float32)
    decoder_out = torch.zeros(2, joiner_dim, dtype=torch.float32)
    export_onnx_model(
        OnnxJoiner(joiner),
        (encoder_out, decoder_out),
        filename,
        input_names=["encoder_out", "decoder_out"],
        output_names=["logit"],
        dynamic_axes={"encoder_out": {0: "N"}, "decoder_out": {0: "N"}, "logit": {0: "N"}},
        meta_data=meta_data,
        opset_version=opset_version,
    )


def quantize_int8(src: PathLike, dst: PathLike, op_types: Sequence[str] = ("MatMul",)) -> None:
    """Dynamic int8 quantisation of the weights of ``op_types`` (onnxruntime), metadata kept.

    Args:
      src: float32 .onnx file.
      dst: output file, e.g. ``encoder-epoch-30-avg-9.int8.onnx`` (written atomically).
      op_types: operators whose weights are quantised; the decoder also benefits from
        ``Gather`` (its embedding table).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".onnx", dir=dst.parent)
    os.close(fd)
    try:
        quantize_dynamic(
            model_input=str(src),
            model_output=tmp,
            op_types_to_quantize=list(op_types),
            weight_type=QuantType.QInt8,
        )
        # quantize_dynamic copies metadata_props in current onnxruntime; make sure of it.
        add_meta_data(tmp, read_meta_data(src))
        publish_file(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    logging.info(f"Wrote {dst}")


def _feature_dim_of(encoder_embed: nn.Module) -> int:
    return int(getattr(encoder_embed, "in_channels", 80))


def _feature_dim(model: nn.Module) -> int:
    return _feature_dim_of(model.encoder_embed)
