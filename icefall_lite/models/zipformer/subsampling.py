"""The Zipformer2 front end: convolutional subsampling of fbank frames by 2 (then the encoder's
output stage halves the rate again, giving 25 Hz output for 100 Hz features)."""

from typing import Tuple

import torch
from torch import Tensor, nn

from icefall_lite.models.zipformer.scaling import (
    Balancer,
    BiasNorm,
    Dropout3,
    FloatLike,
    ScaledConv2d,
    ScaleGrad,
    ScheduledFloat,
    SwooshL,
    SwooshR,
    Whiten,
    depthwise_conv2d,
)


class ConvNeXt(nn.Module):
    """A residual ConvNeXt block on (N, C, T, F) feature maps.

    depthwise 7x7 conv -> pointwise expand (x ``hidden_ratio``) -> SwooshL -> pointwise project,
    plus the residual. The 7x7 conv is centred, so each output frame looks
    ``(kernel_size[0] - 1) // 2`` frames ahead: this fixed look-ahead is why the streaming front
    end needs that many extra (right-context) frames per chunk.
    """

    def __init__(
        self,
        channels: int,
        hidden_ratio: int = 3,
        kernel_size: Tuple[int, int] = (7, 7),
        layerdrop_rate: FloatLike = None,
    ) -> None:
        super().__init__()
        self.padding = ((kernel_size[0] - 1) // 2, (kernel_size[1] - 1) // 2)
        hidden_channels = channels * hidden_ratio
        if layerdrop_rate is None:
            layerdrop_rate = ScheduledFloat((0.0, 0.2), (20000.0, 0.015))
        self.layerdrop_rate = layerdrop_rate

        self.depthwise_conv = nn.Conv2d(
            channels, channels, groups=channels, kernel_size=kernel_size, padding=self.padding
        )
        self.pointwise_conv1 = nn.Conv2d(channels, hidden_channels, kernel_size=1)
        self.hidden_balancer = Balancer(
            hidden_channels, channel_dim=1, min_positive=0.3, max_positive=1.0, min_abs=0.75,
            max_abs=5.0,
        )  # fmt: skip
        self.activation = SwooshL()
        self.pointwise_conv2 = ScaledConv2d(
            hidden_channels, channels, kernel_size=1, initial_scale=0.01
        )
        self.out_balancer = Balancer(
            channels, channel_dim=1, min_positive=0.4, max_positive=0.6, min_abs=1.0, max_abs=6.0
        )
        self.out_whiten = Whiten(
            num_groups=1, whitening_limit=5.0, prob=(0.025, 0.25), grad_scale=0.01
        )

    def _branch(self, x: Tensor) -> Tensor:
        x = self.pointwise_conv1(x)
        x = self.hidden_balancer(x)
        x = self.activation(x)
        return self.pointwise_conv2(x)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, F) -> (N, C, T, F)."""
        residual = x
        if torch.jit.is_scripting() or torch.jit.is_tracing():
            x = self.depthwise_conv(x)
        else:
            x = self._depthwise_conv_with_fast_backward(x)
        x = self._branch(x)
        if not torch.jit.is_scripting() and not torch.jit.is_tracing() and self.training:
            x = self._layer_drop(x)
        x = residual + x
        x = self.out_balancer(x)
        if not torch.jit.is_scripting() and not torch.jit.is_tracing() and x.requires_grad:
            # Whiten wants the channels on the last axis.
            x = self.out_whiten(x.transpose(1, 3)).transpose(1, 3)
        return x

    @torch.jit.unused
    def _depthwise_conv_with_fast_backward(self, x: Tensor) -> Tensor:
        # Same values as self.depthwise_conv(x); the generic CPU depthwise backward is the
        # largest single cost of a training step, see scaling.depthwise_conv2d.
        return depthwise_conv2d(x, self.depthwise_conv)

    @torch.jit.unused
    def _layer_drop(self, x: Tensor) -> Tensor:
        rate = float(self.layerdrop_rate)
        if rate == 0.0:
            return x
        keep = torch.rand((x.shape[0], 1, 1, 1), device=x.device) > rate
        return x * keep.to(x.dtype)

    def streaming_forward(self, x: Tensor, cached_left_pad: Tensor) -> Tuple[Tensor, Tensor]:
        """Process one chunk.

        Args:
            x: (N, C, T, F), whose last ``padding[0]`` frames are right context (look-ahead).
            cached_left_pad: (N, C, padding[0], F), the input frames preceding ``x``.
        Returns:
            (N, C, T - padding[0], F) output and the updated cache.
        """
        time_pad = self.padding[0]
        num_out = x.shape[2] - time_pad
        residual = x[:, :, :num_out, :]
        x = torch.cat((cached_left_pad, x), dim=2)
        # The next chunk starts right after our last output frame.
        new_cache = x[:, :, num_out : num_out + time_pad, :]
        x = nn.functional.conv2d(
            x,
            weight=self.depthwise_conv.weight,
            bias=self.depthwise_conv.bias,
            padding=(0, self.padding[1]),
            groups=self.depthwise_conv.groups,
        )
        return residual + self._branch(x), new_cache


class Conv2dSubsampling(nn.Module):
    """Front end: (N, T, F) fbank -> (N, T', C) embeddings with T' = (T - 7) // 2.

    Three Conv2d layers (time kernel 3, unpadded; the second has stride 2 in time and
    frequency, the third stride 2 in frequency), a ConvNeXt block, then a Linear over
    (channels x remaining frequency bins), BiasNorm and dropout.

    Args:
        in_channels: feature dimension F (e.g. 80); must be >= 7.
        out_channels: embedding dimension C (the first encoder stack's dimension).
        layer1_channels, layer2_channels, layer3_channels: conv channel counts.
        dropout: dropout rate on the output (may be scheduled); one mask per frame.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        layer1_channels: int = 8,
        layer2_channels: int = 32,
        layer3_channels: int = 128,
        dropout: FloatLike = 0.1,
    ) -> None:
        super().__init__()
        if in_channels < 7:
            raise ValueError(f"Conv2dSubsampling needs at least 7 feature bins, got {in_channels}")
        self.conv = nn.Sequential(
            nn.Conv2d(1, layer1_channels, kernel_size=3, padding=(0, 1)),
            # keeps the first conv's gradients inside fp16 range in AMP training
            ScaleGrad(0.2),
            Balancer(layer1_channels, channel_dim=1, max_abs=1.0),
            SwooshR(),
            nn.Conv2d(layer1_channels, layer2_channels, kernel_size=3, stride=2, padding=0),
            Balancer(layer2_channels, channel_dim=1, max_abs=4.0),
            SwooshR(),
            nn.Conv2d(layer2_channels, layer3_channels, kernel_size=3, stride=(1, 2)),
            Balancer(layer3_channels, channel_dim=1, max_abs=4.0),
            SwooshR(),
        )
        self.convnext = ConvNeXt(layer3_channels, kernel_size=(7, 7))
        self.out_width = (((in_channels - 1) // 2) - 1) // 2
        self.layer3_channels = layer3_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.out = nn.Linear(self.out_width * layer3_channels, out_channels)
        self.out_whiten = Whiten(
            num_groups=1,
            whitening_limit=ScheduledFloat((0.0, 4.0), (20000.0, 8.0), default=4.0),
            prob=(0.025, 0.25),
            grad_scale=0.02,
        )
        self.out_norm = BiasNorm(out_channels)
        self.dropout = Dropout3(dropout, shared_dim=1)

    def _flatten_and_project(self, x: Tensor) -> Tensor:
        # x: (N, C, T', F') -> (N, T', C * F') -> (N, T', out_channels)
        n, c, t, f = x.shape
        return self.out(x.transpose(1, 2).reshape(n, t, c * f))

    def forward(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        """
        Args:
            x: (N, T, F) features, T >= 7.
            x_lens: (N,) valid frames per utterance.
        Returns:
            (N, (T - 7) // 2, out_channels) embeddings and (N,) lengths ``(x_lens - 7) // 2``.
        """
        if not torch.jit.is_tracing() and x.shape[1] < 7:
            raise ValueError(f"Conv2dSubsampling needs at least 7 frames, got {x.shape[1]}")
        x = self.conv(x.unsqueeze(1))
        x = self.convnext(x)
        x = self._flatten_and_project(x)
        x = self.out_whiten(x)
        x = self.out_norm(x)
        x = self.dropout(x)
        x_lens = torch.div(x_lens - 7, 2, rounding_mode="floor")
        return x, x_lens

    def streaming_forward(
        self, x: Tensor, x_lens: Tensor, cached_left_pad: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Process one chunk of features.

        Args:
            x: (N, T, F), T = 2 * chunk + 7 + 2 * look_ahead frames, where
               ``look_ahead = convnext.padding[0]`` (3); consecutive chunks overlap by
               ``7 + 2 * look_ahead`` frames.
            x_lens: (N,) valid frames in ``x``.
            cached_left_pad: (N, layer3_channels, look_ahead, out_width), see
               :meth:`get_init_states`.
        Returns:
            (N, (T - 7) // 2 - look_ahead, out_channels), lengths, and the updated cache.
        """
        x = self.conv(x.unsqueeze(1))
        x, cached_left_pad = self.convnext.streaming_forward(x, cached_left_pad)
        x = self._flatten_and_project(x)
        x = self.out_norm(x)
        look_ahead = self.convnext.padding[0]
        x_lens = torch.div(x_lens - 7, 2, rounding_mode="floor") - look_ahead
        return x, x_lens, cached_left_pad

    @torch.jit.export
    def get_init_states(
        self, batch_size: int = 1, device: torch.device = torch.device("cpu")
    ) -> Tensor:
        """Zero cache for :meth:`streaming_forward`: (N, layer3_channels, 3, out_width)."""
        return torch.zeros(
            batch_size,
            self.layer3_channels,
            self.convnext.padding[0],
            self.out_width,
            device=device,
        )
