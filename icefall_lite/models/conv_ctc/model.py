"""Jasper / QuartzNet: a stack of 1-D convolution blocks with a CTC head.

The model (Li et al. 2019, "Jasper"; Kriman et al. 2019, "QuartzNet") is a prologue
convolution (the only strided layer), B blocks of R sub-blocks with residual connections, and
an epilogue of a dilated convolution and a 1x1 convolution; a linear layer (a 1x1 convolution)
and a log-softmax give CTC log-probabilities. It is not causal: each output frame sees
:attr:`ConvCtcModel.context_frames` input frames on both sides, so it streams by buffered
chunks with left and right context (``icefall_lite.streaming.buffered``), not by a chunk-wise
state.
"""

from dataclasses import dataclass, field
from typing import List, Tuple

import torch
from torch import Tensor, nn

from icefall_lite.models.conv_ctc.blocks import (
    ConvBlock,
    conv_output_lengths,
    total_context,
    valid_mask,
)
from icefall_lite.models.ctc import ctc_loss_sum, flatten_targets

__all__ = ["BlockSpec", "ConvCtcConfig", "ConvCtcEncoder", "ConvCtcModel"]


@dataclass(frozen=True)
class BlockSpec:
    """One block: ``repeat`` sub-blocks of ``filters`` channels and kernel ``kernel``."""

    filters: int
    kernel: int
    repeat: int = 1
    stride: int = 1
    dilation: int = 1
    dropout: float = 0.0


@dataclass(frozen=True)
class ConvCtcConfig:
    """A whole architecture.

    Attributes:
      prologue: the strided first convolution (no residual).
      blocks: the B residual blocks.
      epilogue: the closing convolutions (no residual), e.g. dilated k=87 then 1x1.
      separable: time-channel separable convolutions (QuartzNet) instead of full ones (Jasper).
      dense_residual: every block gets the outputs of the prologue and all earlier blocks as
        residual inputs (Jasper "dr"), instead of only its own input.
    """

    prologue: BlockSpec
    blocks: Tuple[BlockSpec, ...]
    epilogue: Tuple[BlockSpec, ...] = field(default_factory=tuple)
    separable: bool = True
    dense_residual: bool = False

    @property
    def output_dim(self) -> int:
        last = self.epilogue[-1] if self.epilogue else (self.blocks or (self.prologue,))[-1]
        return last.filters


class ConvCtcEncoder(nn.Module):
    """(N, T, F) features -> (N, ceil(T / stride), C) encoder output.

    Args:
      feature_dim: F, fbank bins.
      config: the architecture.
    """

    def __init__(self, feature_dim: int, config: ConvCtcConfig) -> None:
        super().__init__()
        if config.prologue.repeat != 1:
            raise ValueError("ConvCtcEncoder: the prologue is a single convolution (repeat 1)")
        if any(b.stride != 1 for b in config.blocks + config.epilogue):
            raise ValueError("ConvCtcEncoder: only the prologue may stride")

        def block(spec: BlockSpec, in_channels: int, residuals: List[int]) -> ConvBlock:
            # A 1x1 convolution is the same separable or not; the kernel decides.
            return ConvBlock(
                in_channels,
                spec.filters,
                spec.kernel,
                repeat=spec.repeat,
                stride=spec.stride,
                dilation=spec.dilation,
                separable=config.separable,
                dropout=spec.dropout,
                residual_channels=residuals,
            )

        self.stride = config.prologue.stride
        self.dense_residual = config.dense_residual
        self.prologue = block(config.prologue, feature_dim, [])
        outputs = [config.prologue.filters]  # channels of the tensors a dense block sees
        self.blocks = nn.ModuleList()
        for spec in config.blocks:
            residuals = list(outputs) if config.dense_residual else [outputs[-1]]
            self.blocks.append(block(spec, outputs[-1], residuals))
            outputs.append(spec.filters)
        self.epilogue = nn.ModuleList()
        channels = outputs[-1]
        for spec in config.epilogue:
            self.epilogue.append(block(spec, channels, []))
            channels = spec.filters
        self.output_dim = channels
        self.context_frames = total_context(
            [self.prologue] + list(self.blocks) + list(self.epilogue)
        )

    def forward(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        """(N, T, F) features, (N,) lengths -> (N, T', C) output (zero past each length),
        (N,) lengths ``ceil(x_lens / stride)``."""
        x = x.transpose(1, 2)  # (N, F, T)
        mask = valid_mask(x_lens, x.size(2)).to(x.dtype)
        empty: List[Tensor] = []
        x, mask = self.prologue(x, mask, empty)
        outputs: List[Tensor] = [x]
        for block in self.blocks:
            residual_inputs = outputs if self.dense_residual else [x]
            x, mask = block(x, mask, residual_inputs)
            outputs = outputs + [x]
        for block in self.epilogue:
            x, mask = block(x, mask, empty)
        x = x * mask
        return x.transpose(1, 2), conv_output_lengths(x_lens, self.stride)


class ConvCtcModel(nn.Module):
    """A convolutional encoder with a CTC head, behind the model interface
    (:mod:`icefall_lite.models.interface`): ``use_transducer`` is False, ``decoder`` and
    ``joiner`` are None, ``forward`` returns ``(0, 0, ctc_loss)``.

    Args:
      feature_dim: fbank bins of the input.
      config: the encoder's architecture.
      vocab_size: output tokens, blank (id 0) included.
      head_dropout: dropout before the output layer.
    """

    use_transducer = False
    use_ctc = True

    def __init__(
        self,
        feature_dim: int,
        config: ConvCtcConfig,
        vocab_size: int,
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.encoder = ConvCtcEncoder(feature_dim, config)
        self.decoder = None
        self.joiner = None
        # Jasper's last layer is a 1x1 convolution with bias: a linear layer on (N, T, C).
        self.ctc_output = nn.Sequential(
            nn.Dropout(head_dropout),
            nn.Linear(self.encoder.output_dim, vocab_size),
            nn.LogSoftmax(dim=-1),
        )

    @property
    def subsampling_factor(self) -> int:
        return self.encoder.stride

    @property
    def context_frames(self) -> int:
        """Input frames on each side one output frame depends on (its receptive field is
        ``2 * context_frames + 1``)."""
        return self.encoder.context_frames

    def forward_encoder(self, x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        """(N, T, F) features, (N,) lengths -> (N, T', C) encoder output, (N,) lengths."""
        return self.encoder(x, x_lens)

    def output_frames(self, num_frames):
        """Encoder frames of ``num_frames`` input frames (int or (N,) tensor): ``ceil(T / s)``."""
        if isinstance(num_frames, Tensor):
            return conv_output_lengths(num_frames, self.encoder.stride)
        return -(-int(num_frames) // self.encoder.stride)

    def streaming_encoder(self, chunk_size: int = 0, left_context_frames: int = 0):
        raise ValueError(
            "a Jasper/QuartzNet model is not causal: stream it with buffered chunks and right "
            "context (icefall_lite.streaming.buffered), not with a chunk-wise encoder state"
        )

    def forward(
        self,
        x: Tensor,
        x_lens: Tensor,
        y: List[List[int]],
        prune_range: int = 5,
        am_scale: float = 0.0,
        lm_scale: float = 0.0,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
          x: (N, T, F) features; x_lens: (N,) valid frames; y: N token-id lists.
          prune_range, am_scale, lm_scale: transducer settings, unused (the interface's).
        Returns:
          (0, 0, ctc_loss): the CTC loss summed over the batch; the transducer terms are zero.
        """
        if x.ndim != 3:
            raise ValueError(f"ConvCtcModel: expected x of shape (N, T, C), got {tuple(x.shape)}")
        if x_lens.ndim != 1 or x_lens.size(0) != x.size(0) or len(y) != x.size(0):
            raise ValueError(
                f"ConvCtcModel: batch sizes differ: x {x.size(0)}, x_lens "
                f"{tuple(x_lens.shape)}, y {len(y)}"
            )
        encoder_out, encoder_out_lens = self.forward_encoder(x, x_lens)
        log_probs = self.ctc_output(encoder_out)
        target_lengths = torch.tensor([len(seq) for seq in y], dtype=torch.int64)
        ctc_loss = ctc_loss_sum(log_probs, encoder_out_lens, flatten_targets(y), target_lengths)
        zero = ctc_loss.new_zeros(())
        return zero, zero, ctc_loss
