"""TorchScript export: one ``torch.jit.script`` file that runs with only torch installed.

The scripted module has ``encoder_embed``/``encoder`` (or, for causal models, a chunk-wise
``encoder``), ``decoder`` and ``joiner`` with the interfaces of the PyTorch model, so
``icefall_lite.search`` runs on it unchanged:

* non-streaming (``jit_script.pt``): ``forward(x (N, T, 80), x_lens (N,)) ->
  (encoder_out (N, T', C), encoder_out_lens (N,))``;
* streaming (``jit_script_chunk_<C>_left_<L>.pt``): ``forward(x, x_lens, states) ->
  (encoder_out, encoder_out_lens, new_states)`` on one chunk of ``decode_chunk_len + pad_length``
  frames, ``get_init_states(batch_size, device)``, and the ints ``decode_chunk_len``,
  ``pad_length`` and the list ``state_batch_dims`` as attributes.
"""

import logging
import os
import tempfile
from pathlib import Path
from typing import List, Tuple, Union

import torch
from torch import Tensor, nn

from icefall_lite.utils import make_pad_mask, publish_file

__all__ = ["OfflineJitModel", "StreamingJitModel", "export_jit_script", "jit_script_filename"]

PathLike = Union[str, Path]


class OfflineJitModel(nn.Module):
    """Front end + encoder + decoder + joiner of an ``AsrModel``, without the training losses."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder_embed = model.encoder_embed
        self.encoder = model.encoder
        self.decoder = model.decoder
        self.joiner = model.joiner

    def forward(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        """x: (N, T, 80) fbank, x_lens: (N,) -> (N, T', C) encoder output and (N,) lengths.
        (``AsrModel.forward_encoder``, which cannot be scripted alone: its class also holds
        the losses.)"""
        x, x_lens = self.encoder_embed(x, x_lens)
        src_key_padding_mask = make_pad_mask(x_lens, x.size(1))
        encoder_out, encoder_out_lens = self.encoder(
            x.permute(1, 0, 2), x_lens, src_key_padding_mask
        )
        return encoder_out.permute(1, 0, 2), encoder_out_lens


class StreamingJitModel(nn.Module):
    """Chunk-wise encoder + decoder + joiner of a causal ``AsrModel``."""

    def __init__(self, model: nn.Module, chunk_size: int, left_context_frames: int) -> None:
        super().__init__()
        self.encoder = model.streaming_encoder(chunk_size, left_context_frames)
        self.decoder = model.decoder
        self.joiner = model.joiner
        self.decode_chunk_len: int = self.encoder.decode_chunk_len
        self.pad_length: int = self.encoder.pad_length
        self.tail_padding_frames: int = int(getattr(self.encoder, "tail_padding_frames", 30))
        # "utterance": the caller normalises the features (see streaming/normalization.py).
        self.input_normalization: str = str(getattr(model, "input_normalization", "none"))
        self.state_batch_dims: List[int] = self.encoder.state_batch_dims

    def forward(
        self, x: Tensor, x_lens: Tensor, states: List[Tensor]
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """One chunk: see ``ZipformerStreamingEncoder.forward``."""
        return self.encoder(x, x_lens, states)

    @torch.jit.export
    def get_init_states(
        self, batch_size: int = 1, device: torch.device = torch.device("cpu")
    ) -> List[Tensor]:
        return self.encoder.get_init_states(batch_size, device)


def jit_script_filename(causal: bool, chunk_size: int = 0, left_context_frames: int = 0) -> str:
    """icefall's names: ``jit_script.pt``, or ``jit_script_chunk_<C>_left_<L>.pt``."""
    if causal:
        return f"jit_script_chunk_{chunk_size}_left_{left_context_frames}.pt"
    return "jit_script.pt"


def export_jit_script(
    model: nn.Module,
    filename: PathLike,
    causal: bool = False,
    chunk_size: int = 16,
    left_context_frames: int = 128,
) -> torch.jit.ScriptModule:
    """Script ``model`` (an ``AsrModel``, moved to CPU and eval mode) and save it atomically.

    Args:
      model: the (averaged) model.
      filename: output file.
      causal: export the chunk-wise streaming model (the model must be causal).
      chunk_size, left_context_frames: streaming settings at 50 Hz (causal only).
    Returns:
      the scripted module.
    """
    model = model.to("cpu").eval()
    if causal:
        wrapper: nn.Module = StreamingJitModel(model, chunk_size, left_context_frames)
    else:
        wrapper = OfflineJitModel(model)
    scripted = torch.jit.script(wrapper)
    filename = Path(filename)
    filename.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{filename.name}.", suffix=".tmp", dir=filename.parent)
    os.close(fd)
    try:
        scripted.save(tmp)
        publish_file(tmp, filename)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    logging.info(f"Saved TorchScript model to {filename}")
    return scripted
