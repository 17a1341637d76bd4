"""Running exported ONNX transducers with onnxruntime, through the same searches as PyTorch.

:class:`OnnxTransducer` loads encoder/decoder/joiner files and exposes ``decoder`` and ``joiner``
with the interface :mod:`icefall_lite.search` uses (the ONNX decoder and encoder outputs are
already projected, so the joiner's projections are identities); :class:`OnnxStreamingEncoder`
is a :class:`icefall_lite.streaming.ChunkEncoder` over the streaming encoder file, so
:func:`icefall_lite.streaming.streaming_decode` drives it like the PyTorch one.
"""

from pathlib import Path
from typing import List, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from icefall_lite.errors import UsageError
from icefall_lite.export.metadata import STREAMING_PAD_LENGTH, int_list
from icefall_lite.models.zipformer.streaming import zipformer2_state_batch_dims

__all__ = ["OnnxStreamingEncoder", "OnnxTransducer", "make_session"]

PathLike = Union[str, Path]


def make_session(filename: PathLike, num_threads: int = 1):
    """An onnxruntime CPU session; a missing or broken file raises a one-line error naming it."""
    import onnxruntime as ort

    if not Path(filename).is_file():
        raise FileNotFoundError(f"{filename}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(
            str(filename), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:
        raise UsageError(f"{filename}: onnxruntime cannot load it ({error})") from None


def _meta(session) -> dict:
    return dict(session.get_modelmeta().custom_metadata_map)


class _OnnxDecoder(nn.Module):
    """``Decoder``'s interface over the decoder session (output already projected)."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        meta = _meta(session)
        self.context_size = int(meta["context_size"])
        self.vocab_size = int(meta["vocab_size"])
        self.blank_id = 0

    def forward(self, y: Tensor, need_pad: bool = False) -> Tensor:
        """y: (N, context_size) int64 -> (N, 1, joiner_dim)."""
        (out,) = self.session.run(None, {"y": y.to(torch.int64).cpu().numpy()})
        return torch.from_numpy(out).unsqueeze(1)


class _OnnxJoiner(nn.Module):
    """``Joiner``'s interface over the joiner session; inputs come projected."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        self.encoder_proj = nn.Identity()
        self.decoder_proj = nn.Identity()

    def forward(
        self, encoder_out: Tensor, decoder_out: Tensor, project_input: bool = True
    ) -> Tensor:
        """Broadcastable (..., joiner_dim) inputs -> (..., vocab_size) logits."""
        encoder_out, decoder_out = torch.broadcast_tensors(encoder_out, decoder_out)
        shape = encoder_out.shape[:-1]
        (logit,) = self.session.run(
            None,
            {
                "encoder_out": encoder_out.reshape(-1, encoder_out.size(-1)).float().numpy(),
                "decoder_out": decoder_out.reshape(-1, decoder_out.size(-1)).float().numpy(),
            },
        )
        return torch.from_numpy(logit).reshape(*shape, -1)


class OnnxTransducer(nn.Module):
    """Decoder and joiner sessions (plus an optional non-streaming encoder) for searching.

    Args:
      decoder, joiner: the exported files.
      encoder: the non-streaming encoder file (optional: streaming uses
        :class:`OnnxStreamingEncoder`).
      num_threads: onnxruntime threads per session.
    """

    def __init__(
        self,
        decoder: PathLike,
        joiner: PathLike,
        encoder: Union[PathLike, None] = None,
        num_threads: int = 1,
    ) -> None:
        super().__init__()
        self.decoder = _OnnxDecoder(make_session(decoder, num_threads))
        self.joiner = _OnnxJoiner(make_session(joiner, num_threads))
        self.encoder_session = make_session(encoder, num_threads) if encoder else None
        # The searches find the device through the parameters; ONNX runs on CPU.
        self._device_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def run_encoder(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        """x: (N, T, 80) fbank, x_lens: (N,) -> (N, T', joiner_dim) projected output, (N,)."""
        if self.encoder_session is None:
            raise RuntimeError("OnnxTransducer was built without an encoder file")
        out, out_lens = self.encoder_session.run(
            None, {"x": x.float().numpy(), "x_lens": x_lens.to(torch.int64).numpy()}
        )
        return torch.from_numpy(out), torch.from_numpy(out_lens)


class OnnxStreamingEncoder:
    """The streaming encoder file as a :class:`icefall_lite.streaming.ChunkEncoder`.

    Shapes and state layout come from the file's metadata (as sherpa-onnx reads them).
    """

    def __init__(self, filename: PathLike, num_threads: int = 1) -> None:
        self.session = make_session(filename, num_threads)
        meta = _meta(self.session)
        if meta.get("model_type") != "zipformer2" or "decode_chunk_len" not in meta:
            raise UsageError(f"{filename}: not a streaming zipformer2 encoder (check its metadata)")
        self.decode_chunk_len = int(meta["decode_chunk_len"])
        self.pad_length = int(meta["T"]) - self.decode_chunk_len
        if self.pad_length != STREAMING_PAD_LENGTH:
            raise UsageError(f"{filename}: unexpected T - decode_chunk_len = {self.pad_length}")
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.num_layers = sum(int_list(meta["num_encoder_layers"]))
        self.state_batch_dims: List[int] = zipformer2_state_batch_dims(self.num_layers)
        self._inputs = self.session.get_inputs()

    def get_init_states(self, batch_size: int = 1, device: torch.device = None) -> List[Tensor]:
        """Zero states, shaped from the graph inputs (batch axis set to ``batch_size``)."""
        states = []
        for info, dim in zip(self._inputs[1:], self.state_batch_dims):
            shape = [1 if not isinstance(s, int) else s for s in info.shape]
            shape[dim] = batch_size
            dtype = torch.int64 if "int64" in info.type else torch.float32
            states.append(torch.zeros(shape, dtype=dtype))
        return states

    def __call__(
        self, x: Tensor, x_lens: Tensor, states: List[Tensor]
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """One chunk. The graph takes every frame of ``x`` as valid (like sherpa-onnx), so
        ``x_lens`` only serves to report the output lengths."""
        feeds = {self.input_names[0]: x.float().cpu().numpy()}
        for name, state in zip(self.input_names[1:], states):
            feeds[name] = state.cpu().numpy()
        outputs = self.session.run(None, feeds)
        encoder_out = torch.from_numpy(outputs[0])
        front_end_frames = torch.div(x_lens - self.pad_length, 2, rounding_mode="floor").clamp(
            min=0
        )
        encoder_out_lens = torch.div(front_end_frames + 1, 2, rounding_mode="floor")
        return encoder_out, encoder_out_lens, [torch.from_numpy(np.asarray(o)) for o in outputs[1:]]
