"""Building blocks of Jasper and QuartzNet: masked 1-D convolutions (plain or time-channel
separable), the sub-block (conv, batch norm, ReLU, dropout) and the block of R sub-blocks with
its residual (and, for Jasper "dr", dense residual) inputs.

Every tensor here is channel-major, ``(N, C, T)``, as ``nn.Conv1d`` wants it; the model turns
it into ``(N, T, C)`` at its edges. Frames past an utterance's length are zeroed before every
convolution, so a batch's padding never leaks into its utterances (and an utterance decodes the
same alone or in a batch, and chunk by chunk, see ``streaming/buffered.py``).
"""

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from icefall_lite.utils import make_pad_mask

__all__ = ["ConvBlock", "MaskedConv", "conv_output_lengths", "total_context", "valid_mask"]


def conv_output_lengths(lengths: Tensor, stride: int) -> Tensor:
    """Output frames of a "same"-padded convolution with ``stride``: ``ceil(T / stride)``."""
    return torch.div(lengths + stride - 1, stride, rounding_mode="floor")


def valid_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(N, 1, T) float mask, 1 on valid frames, 0 on padding."""
    return (~make_pad_mask(lengths, max_len)).unsqueeze(1).to(torch.float32)


class MaskedConv(nn.Module):
    """A "same"-padded 1-D convolution over (N, C_in, T), applied after zeroing the padding.

    Args:
      in_channels, out_channels: channel counts.
      kernel_size: odd kernel width in frames.
      stride: time stride (only the first layer of these models strides).
      dilation: time dilation.
      separable: QuartzNet's time-channel separable convolution: a depthwise convolution over
        time (one kernel per input channel) followed by a 1x1 pointwise convolution mixing the
        channels; ``C_in * k + C_in * C_out`` weights instead of ``C_in * C_out * k``.
      bias: add a bias (off when a batch norm follows, as everywhere but the output layer).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        separable: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"MaskedConv: kernel_size must be odd, got {kernel_size}")
        self.stride = stride
        padding = dilation * (kernel_size - 1) // 2
        self.context = padding  # frames seen on each side, at this layer's input rate
        if separable and kernel_size > 1:
            self.depthwise: Optional[nn.Conv1d] = nn.Conv1d(
                in_channels,
                in_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=in_channels,
                bias=False,
            )
            self.conv = nn.Conv1d(in_channels, out_channels, 1, bias=bias)
        else:
            self.depthwise = None
            self.conv = nn.Conv1d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                bias=bias,
            )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """(N, C_in, T) input, (N, 1, T) mask -> (N, C_out, ceil(T / stride))."""
        x = x * mask
        if self.depthwise is not None:
            x = self.depthwise(x)
        return self.conv(x)


class _NormedConv(nn.Module):
    """A :class:`MaskedConv` followed by batch norm (a sub-block's or a residual's first half)."""

    def __init__(self, conv: MaskedConv, channels: int) -> None:
        super().__init__()
        self.conv = conv
        self.norm = nn.BatchNorm1d(channels, eps=1e-3, momentum=0.1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.norm(self.conv(x, mask))


class ConvBlock(nn.Module):
    """One Jasper/QuartzNet block: ``repeat`` sub-blocks (conv -> batch norm -> ReLU ->
    dropout); the last adds the residual inputs between its batch norm and its ReLU.

    Args:
      in_channels, out_channels: channels in and out (the first sub-block changes them).
      kernel_size, stride, dilation, separable: of every sub-block's convolution.
      repeat: R, the number of sub-blocks.
      dropout: dropout probability after every ReLU.
      residual_channels: channel counts of the residual inputs (1x1 conv + batch norm each);
        empty for no residual (the prologue and epilogue). One entry is the plain residual of
        the block's own input; Jasper "dr" passes every earlier block's output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        repeat: int = 1,
        stride: int = 1,
        dilation: int = 1,
        separable: bool = False,
        dropout: float = 0.0,
        residual_channels: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if repeat < 1:
            raise ValueError(f"ConvBlock: repeat must be >= 1, got {repeat}")
        if residual_channels and stride != 1:
            raise ValueError("ConvBlock: a strided block cannot have residual inputs")
        self.stride = stride
        self.sub_blocks = nn.ModuleList()
        channels = in_channels
        for i in range(repeat):
            conv = MaskedConv(
                channels,
                out_channels,
                kernel_size,
                stride=stride if i == 0 else 1,
                dilation=dilation,
                separable=separable,
            )
            self.sub_blocks.append(_NormedConv(conv, out_channels))
            channels = out_channels
        self.residuals = nn.ModuleList(
            _NormedConv(MaskedConv(c, out_channels, 1), out_channels) for c in residual_channels
        )
        self.dropout = nn.Dropout(dropout)
        # Frames of context on each side at this block's input rate (for buffered streaming):
        # the first convolution's at the input rate, the others' at the strided rate.
        contexts = [sub.conv.context for sub in self.sub_blocks]
        self.context = contexts[0] + sum(contexts[1:]) * stride

    def forward(
        self, x: Tensor, mask: Tensor, residual_inputs: List[Tensor]
    ) -> Tuple[Tensor, Tensor]:
        """
        Args:
          x: (N, C_in, T) input; mask: its (N, 1, T) valid-frame mask.
          residual_inputs: one (N, C_r, T') tensor per ``residual_channels`` entry.
        Returns:
          (N, C_out, T') output and its (N, 1, T') mask (T' = ceil(T / stride)).
        """
        last = len(self.sub_blocks) - 1
        for i, sub in enumerate(self.sub_blocks):
            x = sub(x, mask)
            if i == 0 and self.stride > 1:
                mask = mask[:, :, :: self.stride]  # ceil(T / stride) frames, as the conv
            if i == last:
                for j, residual in enumerate(self.residuals):
                    x = x + residual(residual_inputs[j], mask)
            x = self.dropout(torch.relu(x))
        return x, mask


def total_context(blocks: Sequence[ConvBlock]) -> int:
    """Input frames on each side that one output frame of ``blocks`` (in order) depends on."""
    context, rate = 0, 1
    for block in blocks:
        context += block.context * rate
        rate *= block.stride
    return context
