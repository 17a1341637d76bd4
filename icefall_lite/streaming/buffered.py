"""Buffered (chunked) inference of a non-causal CTC model: how Jasper/QuartzNet stream.

A non-causal convolutional encoder has no chunk-wise state; instead (as NeMo's buffered CTC
inference does) the audio is cut into chunks of ``chunk`` fbank frames and each chunk is
encoded inside a window with ``left`` frames of history and ``right`` frames of look-ahead,
keeping only the chunk's own output frames. Output frame ``t`` then sees input frames
``[t - left, t + right]`` at worst, so when ``left`` and ``right`` reach the model's
``context_frames`` the result equals full-context decoding exactly; smaller windows trade
accuracy for latency and compute.

Latency: a chunk's last frame is emitted once ``right`` frames after it have arrived, so the
algorithmic latency is ``(chunk + right) * 10 ms`` (fbank frames are 10 ms) plus the time to
encode one window of ``left + chunk + right`` frames; each window costs
``(left + chunk + right) / chunk`` times the full-context compute per frame.
"""

from typing import Tuple

import torch
from torch import Tensor, nn

__all__ = ["BufferedCtcModel", "buffered_encode", "check_buffer_sizes", "model_stride"]


def model_stride(model: nn.Module) -> int:
    """The encoder's subsampling factor (``output_frames`` of a long input)."""
    return round(6000 / int(model.output_frames(6000)))


def check_buffer_sizes(stride: int, chunk: int, left: int, right: int) -> None:
    """``ValueError`` naming the flag: chunk > 0, left/right >= 0, chunk and left multiples of
    the model's stride (so the chunks' output frames tile the utterance)."""
    if chunk <= 0:
        raise ValueError(f"--chunk-frames must be positive, got {chunk}")
    for flag, value in (("--left-context", left), ("--right-context", right)):
        if value < 0:
            raise ValueError(f"{flag} must be >= 0, got {value}")
    for flag, value in (("--chunk-frames", chunk), ("--left-context", left)):
        if value % stride:
            raise ValueError(f"{flag} {value} must be a multiple of the model's stride {stride}")


@torch.no_grad()
def buffered_encode(
    model: nn.Module, x: Tensor, x_lens: Tensor, chunk: int, left: int, right: int
) -> Tuple[Tensor, Tensor]:
    """Encode (N, T, F) features chunk by chunk; returns what ``model.forward_encoder`` does,
    (N, T', C) and (N,) lengths, each chunk computed from its window only.

    Args:
      model: a non-causal model with ``forward_encoder`` and ``output_frames`` (stride s).
      chunk, left, right: fbank frames of a chunk and of its left and right context.
    """
    stride = model_stride(model)
    check_buffer_sizes(stride, chunk, left, right)
    n, t, _ = x.shape
    total = model.output_frames(x_lens)
    pieces = []
    for start in range(0, t, chunk):
        lo, hi = max(0, start - left), min(t, start + chunk + right)
        window_lens = (x_lens - lo).clamp(min=0, max=hi - lo)
        active = window_lens > 0
        # An utterance that has ended still needs a row; give it one frame (dropped below).
        out, _ = model.forward_encoder(x[:, lo:hi], window_lens.clamp(min=1))
        first = (start - lo) // stride
        pieces.append(out[:, first : first + chunk // stride] * active.view(n, 1, 1))
    encoder_out = torch.cat(pieces, dim=1)[:, : int(total.max())]
    # Frames past each utterance's end are zero, as forward_encoder leaves them.
    positions = torch.arange(encoder_out.size(1), device=x.device)
    encoder_out = encoder_out * (positions.unsqueeze(0) < total.unsqueeze(1)).unsqueeze(-1)
    return encoder_out, total


class BufferedCtcModel(nn.Module):
    """A CTC model whose ``forward_encoder`` is :func:`buffered_encode` (everything else is
    the wrapped model's), so the decoding code runs unchanged on buffered streaming output."""

    def __init__(self, model: nn.Module, chunk: int, left: int, right: int) -> None:
        super().__init__()
        check_buffer_sizes(model_stride(model), chunk, left, right)
        self.model = model
        self.chunk, self.left, self.right = chunk, left, right
        self.ctc_output = model.ctc_output
        self.vocab_size = model.vocab_size
        self.use_ctc, self.use_transducer = model.use_ctc, model.use_transducer
        self.decoder = self.joiner = None

    def forward_encoder(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        return buffered_encode(self.model, x, x_lens, self.chunk, self.left, self.right)

    def output_frames(self, num_frames):
        return self.model.output_frames(num_frames)
