"""ONNX export of the LSTM transducer, and running it with onnxruntime through the library's
streaming decode loop and searches.

Three files, as for the Zipformer (sherpa-onnx's layout), but the decoder is recurrent:

* encoder (one chunk): ``x`` (N, decode_chunk_len, 80) normalised features, ``h_pre``,
  ``c_pre`` (pre-layers, N, hidden), ``h_post``, ``c_post`` -> ``encoder_out`` (N, chunk,
  joiner_dim) after the joiner's encoder projection, and the four new states;
* decoder (one step): ``y`` (N, 1) int64 token, ``h``, ``c`` (layers, N, dim) -> ``decoder_out``
  (N, joiner_dim) after the joiner's decoder projection, ``new_h``, ``new_c``;
* joiner: as the Zipformer's (:func:`icefall_lite.export.onnx.export_joiner_onnx`).

Metadata: the encoder's ``model_type`` is ``lstm_transducer`` with ``decode_chunk_len`` and the
state shapes; the decoder's ``stateful`` is 1.
"""

from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from icefall_lite.errors import UsageError
from icefall_lite.export.onnx import DEFAULT_OPSET, export_joiner_onnx, export_onnx_model
from icefall_lite.export.onnx_model import _meta, _OnnxJoiner, make_session

__all__ = [
    "LSTM_MODEL_TYPE",
    "OnnxLstmStreamingEncoder",
    "OnnxLstmTransducer",
    "export_lstm_transducer_onnx",
]

LSTM_MODEL_TYPE = "lstm_transducer"
PathLike = Union[str, Path]
_STATE_NAMES = ["h_pre", "c_pre", "h_post", "c_post"]


class _EncoderChunk(nn.Module):
    def __init__(self, encoder: nn.Module, encoder_proj: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.encoder_proj = encoder_proj

    def forward(self, x, h_pre, c_pre, h_post, c_post):
        lens = torch.full((x.size(0),), x.size(1), dtype=torch.int64)
        out, _, states = self.encoder(x, lens, [h_pre, c_pre, h_post, c_post])
        return (self.encoder_proj(out), *states)


class _DecoderStep(nn.Module):
    def __init__(self, decoder: nn.Module, decoder_proj: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder
        self.decoder_proj = decoder_proj

    def forward(self, y, h, c):
        out, (new_h, new_c) = self.decoder.step(y[:, 0], (h, c))
        return self.decoder_proj(out), new_h, new_c


def export_lstm_transducer_onnx(
    model: nn.Module,
    files: Dict[str, Path],
    chunk_size: int,
    opset_version: int = DEFAULT_OPSET,
) -> None:
    """Write ``files["encoder"]``, ``files["decoder"]`` and ``files["joiner"]`` for an
    :class:`~icefall_lite.models.lstm_transducer.LstmTransducer` (eval mode, CPU).

    Args:
      chunk_size: encoder frames per chunk (the encoder file is for that chunk length).
    """
    streaming = model.streaming_encoder(chunk_size)
    encoder = streaming.encoder
    states = streaming.get_init_states(1)
    x = torch.zeros(1, streaming.decode_chunk_len, encoder.feature_dim)
    axes = {"x": {0: "N"}, "encoder_out": {0: "N"}}
    for name in _STATE_NAMES:
        axes[name] = {1: "N"}
        axes[f"new_{name}"] = {1: "N"}
    export_onnx_model(
        _EncoderChunk(encoder, model.joiner.encoder_proj),
        (x, *states),
        files["encoder"],
        input_names=["x"] + _STATE_NAMES,
        output_names=["encoder_out"] + [f"new_{n}" for n in _STATE_NAMES],
        dynamic_axes=axes,
        meta_data={
            "model_type": LSTM_MODEL_TYPE,
            "decode_chunk_len": str(streaming.decode_chunk_len),
            "chunk_size": str(chunk_size),
            "subsampling_factor": str(encoder.subsampling_factor),
            "num_pre_layers": str(encoder.num_pre_layers),
            "num_post_layers": str(encoder.num_post_layers),
            "hidden_dim": str(encoder.hidden_dim),
            "input_normalization": getattr(model, "input_normalization", "none"),
        },
        opset_version=opset_version,
    )
    decoder = model.decoder
    h, c = decoder.init_state(1)
    export_onnx_model(
        _DecoderStep(decoder, model.joiner.decoder_proj),
        (torch.zeros(1, 1, dtype=torch.int64), h, c),
        files["decoder"],
        input_names=["y", "h", "c"],
        output_names=["decoder_out", "new_h", "new_c"],
        dynamic_axes={
            "y": {0: "N"},
            "h": {1: "N"},
            "c": {1: "N"},
            "decoder_out": {0: "N"},
            "new_h": {1: "N"},
            "new_c": {1: "N"},
        },
        meta_data={
            "context_size": "1",
            "vocab_size": str(decoder.vocab_size),
            "stateful": "1",
            "num_layers": str(decoder.num_layers),
            "decoder_dim": str(decoder.decoder_dim),
        },
        opset_version=opset_version,
    )
    joiner_dim = model.joiner.output_linear.in_features
    export_joiner_onnx(
        model.joiner, files["joiner"], {"joiner_dim": str(joiner_dim)}, opset_version
    )


class OnnxLstmStreamingEncoder:
    """The encoder file as a :class:`~icefall_lite.models.interface.ChunkEncoder` (its output
    is already projected for the joiner)."""

    def __init__(self, filename: PathLike, num_threads: int = 1) -> None:
        self.session = make_session(filename, num_threads)
        meta = _meta(self.session)
        if meta.get("model_type") != LSTM_MODEL_TYPE:
            raise UsageError(f"{filename}: not an lstm_transducer encoder (check its metadata)")
        self.decode_chunk_len = int(meta["decode_chunk_len"])
        self.pad_length = 0
        self.tail_padding_frames = 0
        self.subsampling_factor = int(meta["subsampling_factor"])
        self.input_normalization = meta.get("input_normalization", "none")
        self.state_batch_dims: List[int] = [1, 1, 1, 1]
        self._layers = [int(meta["num_pre_layers"])] * 2 + [int(meta["num_post_layers"])] * 2
        self._hidden = int(meta["hidden_dim"])

    def get_init_states(self, batch_size: int = 1, device: torch.device = None) -> List[Tensor]:
        return [torch.zeros(n, batch_size, self._hidden) for n in self._layers]

    def __call__(
        self, x: Tensor, x_lens: Tensor, states: List[Tensor]
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        feeds = {"x": x.float().cpu().numpy()}
        for name, state in zip(_STATE_NAMES, states):
            feeds[name] = state.cpu().numpy()
        outputs = self.session.run(None, feeds)
        lens = torch.div(x_lens, self.subsampling_factor, rounding_mode="floor")
        return (
            torch.from_numpy(outputs[0]),
            lens,
            [torch.from_numpy(np.asarray(o)) for o in outputs[1:]],
        )


class _OnnxLstmDecoder(nn.Module):
    """:class:`~icefall_lite.models.lstm_transducer.LstmDecoder`'s search interface
    (``init_state``, ``step``) over the decoder session (output already projected)."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        meta = _meta(session)
        self.is_stateful = True
        self.context_size = 1
        self.blank_id = 0
        self.vocab_size = int(meta["vocab_size"])
        self.num_layers = int(meta["num_layers"])
        self.decoder_dim = int(meta["decoder_dim"])

    def init_state(self, batch_size: int, device: torch.device = None) -> Tuple[Tensor, Tensor]:
        shape = (self.num_layers, batch_size, self.decoder_dim)
        return torch.zeros(shape), torch.zeros(shape)

    def step(
        self, tokens: Tensor, state: Optional[Tuple[Tensor, Tensor]]
    ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        if state is None:
            state = self.init_state(tokens.numel())
        out, h, c = self.session.run(
            None,
            {
                "y": tokens.reshape(-1, 1).to(torch.int64).cpu().numpy(),
                "h": state[0].cpu().numpy(),
                "c": state[1].cpu().numpy(),
            },
        )
        return torch.from_numpy(out), (torch.from_numpy(h), torch.from_numpy(c))


class OnnxLstmTransducer(nn.Module):
    """Decoder and joiner sessions of an exported LSTM transducer, for the searches."""

    def __init__(self, decoder: PathLike, joiner: PathLike, num_threads: int = 1) -> None:
        super().__init__()
        session = make_session(decoder, num_threads)
        if _meta(session).get("stateful") != "1":
            raise UsageError(f"{decoder}: not a recurrent (lstm_transducer) decoder")
        self.decoder = _OnnxLstmDecoder(session)
        self.joiner = _OnnxJoiner(make_session(joiner, num_threads))
        # The searches find the device through the parameters; ONNX runs on CPU.
        self._device_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)
