"""Export of a CTC-only model (Jasper/QuartzNet) to TorchScript and ONNX, and running the ONNX
file with onnxruntime.

Both exported forms compute the same function, ``(x (N, T, 80) fbank, x_lens (N,)) ->
(log_probs (N, T', V), log_probs_len (N,))``: encoder and CTC head in one graph, the
log-probabilities that ``icefall_lite.search.ctc`` searches (blank id 0). The ONNX file's
metadata names the model type, vocabulary size and subsampling factor.
"""

import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, Tuple, Union

import torch
from torch import Tensor, nn

from icefall_lite.utils import publish_file

__all__ = ["CtcExportModel", "OnnxCtcModel", "export_ctc_jit", "export_ctc_onnx"]

PathLike = Union[str, Path]


class CtcExportModel(nn.Module):
    """Encoder + CTC head of a model with ``encoder`` (``(x, x_lens) -> (N, T', C), (N,)``)
    and ``ctc_output``; no losses, scriptable and traceable."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.ctc_output = model.ctc_output

    def forward(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        """(N, T, F) fbank, (N,) lengths -> (N, T', V) log-probs, (N,) lengths."""
        encoder_out, encoder_out_lens = self.encoder(x, x_lens)
        return self.ctc_output(encoder_out), encoder_out_lens


def export_ctc_jit(model: nn.Module, filename: PathLike) -> torch.jit.ScriptModule:
    """``torch.jit.script`` the model's encoder and CTC head; saved atomically."""
    scripted = torch.jit.script(CtcExportModel(model.to("cpu").eval()))
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
    logging.info(f"Saved TorchScript CTC model to {filename}")
    return scripted


def export_ctc_onnx(
    model: nn.Module,
    filename: PathLike,
    meta_data: Dict[str, str],
    feature_dim: int = 80,
    opset_version: int = 13,
) -> None:
    """Export encoder + CTC head as one ONNX graph with dynamic batch and time axes."""
    from icefall_lite.export.onnx import export_onnx_model

    wrapper = CtcExportModel(model.to("cpu").eval())
    x = torch.zeros(2, 203, feature_dim)
    x_lens = torch.tensor([203, 150], dtype=torch.int64)
    export_onnx_model(
        wrapper,
        (x, x_lens),
        filename,
        input_names=["x", "x_lens"],
        output_names=["log_probs", "log_probs_len"],
        dynamic_axes={
            "x": {0: "N", 1: "T"},
            "x_lens": {0: "N"},
            "log_probs": {0: "N", 1: "T_out"},
            "log_probs_len": {0: "N"},
        },
        meta_data=meta_data,
        opset_version=opset_version,
    )


class OnnxCtcModel:
    """An exported CTC ONNX file run by onnxruntime: ``(x, x_lens) -> (log_probs, lens)``."""

    def __init__(self, filename: PathLike, num_threads: int = 1) -> None:
        from icefall_lite.export.onnx_model import make_session

        self.session = make_session(filename, num_threads)

    def __call__(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        log_probs, lens = self.session.run(
            None, {"x": x.float().numpy(), "x_lens": x_lens.to(torch.int64).numpy()}
        )
        return torch.from_numpy(log_probs), torch.from_numpy(lens)
