"""The Zipformer2 encoder (Yao et al., "Zipformer: A faster and better encoder for automatic
speech recognition", arXiv 2310.11230).

Layout (all tensors here are time-major, (T, N, C), as in icefall):

* a sequence of encoder *stacks*, each running at its own frame rate
  (``downsampling_factor``, e.g. 1,2,4,8,4,2 relative to the front end's 50 Hz) and width
  (``encoder_dim``); a stack downsamples its input by a learned weighted average, runs its
  layers, upsamples by repetition and mixes the result with its input (a learned per-channel
  bypass), so consecutive stacks form a U-Net;
* every layer computes one set of relative-position attention weights and shares them between
  a non-linear attention module and two self-attention modules; it also has three feed-forward
  modules and two convolution modules, BiasNorm and a learned bypass (layer skip);
* the output combines the last stack with the wider dimensions of earlier stacks, then
  halves the frame rate again (25 Hz for 100 Hz fbank).

Streaming (``causal=True``): attention is masked to chunks plus a limited left context and the
convolutions are chunk-causal; during training the chunk size and left context are drawn at
random per batch from ``chunk_size`` / ``left_context_frames``. :meth:`Zipformer2.streaming_forward`
processes one chunk with cached state (see :meth:`Zipformer2.get_init_states`) and gives the same
outputs as the full-utterance forward with the matching chunk mask.
"""

import math
import random
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from icefall_lite.models.zipformer.scaling import (
    ActivationDropoutAndLinear,
    Balancer,
    BiasNorm,
    ChunkCausalDepthwiseConv1d,
    Dropout2,
    FloatLike,
    ScaledLinear,
    ScheduledFloat,
    Whiten,
    convert_num_channels,
    limit_param_value,
    penalize_abs_values_gt,
)

# Number of cached tensors per encoder layer in the streaming state list.
NUM_STATES_PER_LAYER = 6


def _whitening_schedule(x: float, ratio: float = 2.0) -> ScheduledFloat:
    return ScheduledFloat((0.0, x), (20000.0, ratio * x), default=x)


def _skip_schedule(*points: Tuple[float, float]) -> ScheduledFloat:
    return ScheduledFloat(*points, default=0.0)


def _apply_mask(x: Tensor, mask: Optional[Tensor]) -> Tensor:
    """x * mask where mask (N, 1) broadcasts over (T, N, C); no-op for None."""
    if mask is None:
        return x
    return x * mask


def _sequence_keep_mask(x: Tensor, drop_rate: float) -> Optional[Tensor]:
    """(N, 1) 0/1 mask dropping whole sequences with probability ``drop_rate``; x: (T, N, C)."""
    if drop_rate == 0.0:
        return None
    return (torch.rand(x.shape[1], 1, device=x.device) > drop_rate).to(x.dtype)


class BypassModule(nn.Module):
    """``out = orig + (new - orig) * scale`` with a learned per-channel ``scale``.

    During training the scale is kept within ``[scale_min, scale_max]`` (scale_min starts near
    1 so every module must learn something early), and with probability ``skip_rate`` a
    sequence uses scale 0, i.e. the whole module is skipped (layer drop).

    Shapes: orig and new (T, N, C); output (T, N, C).
    """

    def __init__(
        self,
        embed_dim: int,
        skip_rate: FloatLike = 0.0,
        scale_min: Optional[FloatLike] = None,
        scale_max: FloatLike = 1.0,
    ) -> None:
        super().__init__()
        self.bypass_scale = nn.Parameter(torch.full((embed_dim,), 0.5))
        self.skip_rate = skip_rate
        self.scale_min = (
            ScheduledFloat((0.0, 0.9), (20000.0, 0.2), default=0.0)
            if scale_min is None
            else scale_min
        )
        self.scale_max = scale_max

    def forward(self, src_orig: Tensor, src: Tensor) -> Tensor:
        scale = self.bypass_scale
        if not torch.jit.is_scripting() and not torch.jit.is_tracing() and self.training:
            scale = self._training_scale(src.shape[1])
        return src_orig + (src - src_orig) * scale

    @torch.jit.unused
    def _training_scale(self, batch_size: int) -> Tensor:
        scale = limit_param_value(
            self.bypass_scale, min_value=float(self.scale_min), max_value=float(self.scale_max)
        )
        skip_rate = float(self.skip_rate)
        if skip_rate != 0.0:
            keep = torch.rand((batch_size, 1), device=scale.device) > skip_rate
            scale = scale * keep.to(scale.dtype)  # (N, C); zero rows skip the module
        return scale


class CompactRelPositionalEncoding(nn.Module):
    """Relative positional embeddings that resolve small offsets finely and large ones coarsely.

    An offset ``x`` is compressed logarithmically beyond about ``sqrt(embed_dim)``, mapped into a
    finite interval by atan, and embedded with ``embed_dim / 2`` cos/sin pairs (the last channel
    is a constant 1, acting as a bias).

    ``forward(x, left_context_len)`` returns embeddings for the offsets
    ``-(T + left_context_len - 1) ... T - 1`` (key position minus query position) in increasing
    order: shape (1, 2 T + left_context_len - 1, embed_dim), T = x.shape[0].
    """

    def __init__(self, embed_dim: int, dropout_rate: FloatLike, length_factor: float = 1.0):
        super().__init__()
        if embed_dim % 2 != 0:
            raise ValueError(f"positional embedding dim must be even, got {embed_dim}")
        if length_factor < 1.0:
            raise ValueError(f"length_factor must be >= 1, got {length_factor}")
        self.embed_dim = embed_dim
        self.length_factor = length_factor
        self.dropout = Dropout2(dropout_rate)

    def forward(self, x: Tensor, left_context_len: int = 0) -> Tensor:
        seq_len = x.shape[0]
        offsets = torch.arange(
            -(seq_len + left_context_len - 1), seq_len, device=x.device, dtype=torch.float32
        ).unsqueeze(1)
        freqs = 1.0 + torch.arange(self.embed_dim // 2, device=x.device, dtype=torch.float32)
        compression_length = self.embed_dim**0.5
        # d(compressed)/dx == 1 at 0, so nearby offsets stay distinguishable.
        compressed = (
            compression_length
            * offsets.sign()
            * ((offsets.abs() + compression_length).log() - math.log(compression_length))
        )
        length_scale = self.length_factor * self.embed_dim / (2.0 * math.pi)
        angles = (compressed / length_scale).atan() * freqs  # (L, embed_dim / 2)
        pe = torch.stack((angles.cos(), angles.sin()), dim=-1).reshape(-1, self.embed_dim)
        pe = torch.cat((pe[:, :-1], torch.ones_like(pe[:, :1])), dim=1)
        return self.dropout(pe.to(x.dtype).unsqueeze(0))


def _rel_to_abs(pos_scores: Tensor, num_keys: int) -> Tensor:
    """Turns scores indexed by relative offset into scores indexed by key position.

    Args:
        pos_scores: (H, N, T1, num_keys + T1 - 1), the last axis over offsets
            ``-(num_keys - 1) ... T1 - 1`` (see :class:`CompactRelPositionalEncoding`).
        num_keys: number of keys T2 (left context plus T1).
    Returns:
        (H, N, T1, T2) with ``out[..., i, j] = pos_scores[..., i, T1 - 1 - i + j]``.
    """
    num_heads, batch_size, num_queries, num_offsets = pos_scores.shape
    if torch.jit.is_tracing():
        # as_strided is not exportable to ONNX; gather the same elements instead.
        rows = torch.arange(num_queries - 1, -1, -1, device=pos_scores.device).unsqueeze(1)
        index = rows + torch.arange(num_keys, device=pos_scores.device)
        index = index.expand(num_heads, batch_size, num_queries, num_keys)
        return torch.gather(pos_scores, 3, index)
    pos_scores = pos_scores.contiguous()
    s0, s1, s2, s3 = pos_scores.stride()
    # Stepping one query forward moves the window one offset to the left.
    return pos_scores.as_strided(
        (num_heads, batch_size, num_queries, num_keys),
        (s0, s1, s2 - s3, s3),
        storage_offset=pos_scores.storage_offset() + s3 * (num_queries - 1),
    )


class RelPositionMultiheadAttentionWeights(nn.Module):
    """Multi-head attention weights with relative positional scores (Transformer-XL style,
    simplified): ``softmax(q.k + p.pos_emb)`` per head. No values: the weights are consumed by
    :class:`SelfAttention` and :class:`NonlinAttention`.

    Args:
        embed_dim: input channels C.
        pos_dim: dimension of the positional embeddings.
        num_heads, query_head_dim (= key head dim), pos_head_dim: per-head sizes.
    The usual ``head_dim ** -0.5`` factor is folded into the initial scale of ``in_proj``.
    """

    def __init__(
        self,
        embed_dim: int,
        pos_dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        dropout: float = 0.0,
        pos_emb_skip_rate: Optional[FloatLike] = None,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.query_head_dim = query_head_dim
        self.pos_head_dim = pos_head_dim
        self.dropout = dropout
        self.pos_emb_skip_rate = (
            ScheduledFloat((0.0, 0.5), (4000.0, 0.0))
            if pos_emb_skip_rate is None
            else pos_emb_skip_rate
        )
        in_proj_dim = (2 * query_head_dim + pos_head_dim) * num_heads
        self.in_proj = ScaledLinear(
            embed_dim, in_proj_dim, bias=True, initial_scale=query_head_dim**-0.25
        )
        self.whiten_keys = Whiten(
            num_groups=num_heads,
            whitening_limit=_whitening_schedule(3.0),
            prob=(0.025, 0.25),
            grad_scale=0.025,
        )
        # The weights are invariant to a constant added to the keys, so the key bias gets no
        # real gradient but can drift through round-off; keep its mean near zero.
        self.balance_keys = Balancer(
            query_head_dim * num_heads,
            channel_dim=-1,
            min_positive=0.4,
            max_positive=0.6,
            min_abs=0.0,
            max_abs=100.0,
            prob=0.025,
        )
        self.linear_pos = ScaledLinear(
            pos_dim, num_heads * pos_head_dim, bias=False, initial_scale=0.05
        )

    def _project(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """x (T, N, C) -> q, k (T, N, H * Dq) and p (T, N, H * Dp)."""
        x = self.in_proj(x)
        query_dim = self.query_head_dim * self.num_heads
        q = x[..., :query_dim]
        k = x[..., query_dim : 2 * query_dim]
        p = x[..., 2 * query_dim :]
        return q, k, p

    def _scores(self, q: Tensor, k: Tensor, p: Tensor, pos_emb: Optional[Tensor]) -> Tensor:
        """Raw attention scores (H, N, T1, T2) from q, p: (T1, N, H*D) and k: (T2, N, H*D)."""
        num_heads = self.num_heads
        num_queries, batch_size, _ = q.shape
        num_keys = k.shape[0]
        q = q.reshape(num_queries, batch_size, num_heads, self.query_head_dim).permute(2, 1, 0, 3)
        k = k.reshape(num_keys, batch_size, num_heads, self.query_head_dim).permute(2, 1, 3, 0)
        scores = torch.matmul(q, k)  # (H, N, T1, T2)
        if pos_emb is not None:
            p = p.reshape(num_queries, batch_size, num_heads, self.pos_head_dim).permute(2, 1, 0, 3)
            pos = self.linear_pos(pos_emb)  # (1, T2 + T1 - 1, H * Dp)
            pos = pos.reshape(pos.shape[0], pos.shape[1], num_heads, self.pos_head_dim)
            pos = pos.permute(2, 0, 3, 1)  # (H, 1, Dp, T2 + T1 - 1)
            scores = scores + _rel_to_abs(torch.matmul(p, pos), num_keys)
        return scores

    def forward(
        self,
        x: Tensor,
        pos_emb: Tensor,
        key_padding_mask: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """
        Args:
            x: (T, N, C).
            pos_emb: (1, 2T - 1, pos_dim).
            key_padding_mask: (N, T) bool, True = padding (ignored as a key).
            attn_mask: (T, T) or (N, T, T) bool, (query, key), True = not allowed.
        Returns:
            attention weights (H, N, T, T), rows summing to 1.
        """
        q, k, p = self._project(x)
        use_pos = True
        if not torch.jit.is_scripting() and not torch.jit.is_tracing() and self.training:
            k = self.whiten_keys(self.balance_keys(k))
            use_pos = random.random() >= float(self.pos_emb_skip_rate)
        scores = self._scores(q, k, p, pos_emb if use_pos else None)
        if not torch.jit.is_scripting() and not torch.jit.is_tracing() and self.training:
            if random.random() < 0.1:
                # Failsafe against implausibly large scores (not a regulariser in normal use).
                scores = penalize_abs_values_gt(scores, limit=25.0, penalty=1.0e-4)
        # -1000 rather than -inf: fully masked rows stay finite and exp(-1000) is exactly 0.
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask, -1000.0)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask.unsqueeze(1), -1000.0)
        weights = scores.softmax(dim=-1)
        if self.dropout > 0.0 and self.training:
            weights = nn.functional.dropout(weights, p=self.dropout, training=True)
        return weights

    def streaming_forward(
        self,
        x: Tensor,
        pos_emb: Tensor,
        cached_key: Tensor,
        left_context_len: int,
        key_padding_mask: Tensor,
    ) -> Tuple[Tensor, Tensor]:
        """
        Args:
            x: (T, N, C) the current chunk.
            pos_emb: (1, left_context_len + 2T - 1, pos_dim).
            cached_key: (left_context_len, N, H * Dq) keys of the preceding frames.
            left_context_len: number of cached frames.
            key_padding_mask: (N, left_context_len + T) bool, True = masked.
        Returns:
            weights (H, N, T, left_context_len + T) and the updated key cache.
        """
        q, k, p = self._project(x)
        k = torch.cat((cached_key, k), dim=0)
        new_cached_key = k[k.shape[0] - left_context_len :]
        scores = self._scores(q, k, p, pos_emb)
        scores = scores.masked_fill(key_padding_mask.unsqueeze(1), -1000.0)
        return scores.softmax(dim=-1), new_cached_key


class SelfAttention(nn.Module):
    """Attention output from precomputed weights: values = Linear(x), out = Linear(weights @ v).

    Shapes: x (T, N, C); weights (H, N, T, T2); output (T, N, C).
    """

    def __init__(self, embed_dim: int, num_heads: int, value_head_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, num_heads * value_head_dim, bias=True)
        self.out_proj = ScaledLinear(
            num_heads * value_head_dim, embed_dim, bias=True, initial_scale=0.05
        )
        self.whiten = Whiten(
            num_groups=1,
            whitening_limit=_whitening_schedule(7.5, ratio=3.0),
            prob=(0.025, 0.25),
            grad_scale=0.01,
        )

    def _attend(self, values: Tensor, attn_weights: Tensor, num_queries: int) -> Tensor:
        # values: (T2, N, H * Dv) -> (H, N, T2, Dv); result (T1, N, H * Dv)
        num_heads = attn_weights.shape[0]
        num_keys, batch_size, _ = values.shape
        values = values.reshape(num_keys, batch_size, num_heads, -1).permute(2, 1, 0, 3)
        out = torch.matmul(attn_weights, values)  # (H, N, T1, Dv)
        return out.permute(2, 1, 0, 3).reshape(num_queries, batch_size, -1)

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        out = self.out_proj(self._attend(self.in_proj(x), attn_weights, x.shape[0]))
        return self.whiten(out)

    def streaming_forward(
        self, x: Tensor, attn_weights: Tensor, cached_val: Tensor, left_context_len: int
    ) -> Tuple[Tensor, Tensor]:
        """cached_val: (left_context_len, N, H * Dv); returns output and the updated cache."""
        values = torch.cat((cached_val, self.in_proj(x)), dim=0)
        new_cached_val = values[values.shape[0] - left_context_len :]
        return self.out_proj(self._attend(values, attn_weights, x.shape[0])), new_cached_val


class FeedforwardModule(nn.Module):
    """Linear -> SwooshL -> dropout (mask shared over time) -> Linear; (T, N, C) -> (T, N, C)."""

    def __init__(self, embed_dim: int, feedforward_dim: int, dropout: FloatLike) -> None:
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, feedforward_dim)
        self.hidden_balancer = Balancer(
            feedforward_dim,
            channel_dim=-1,
            min_positive=0.3,
            max_positive=1.0,
            min_abs=0.75,
            max_abs=5.0,
        )
        self.out_proj = ActivationDropoutAndLinear(
            feedforward_dim,
            embed_dim,
            activation="SwooshL",
            dropout_p=dropout,
            dropout_shared_dim=0,
            bias=True,
            initial_scale=0.1,
        )
        self.out_whiten = Whiten(
            num_groups=1, whitening_limit=_whitening_schedule(7.5), prob=(0.025, 0.25),
            grad_scale=0.01,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        x = self.hidden_balancer(self.in_proj(x))
        return self.out_whiten(self.out_proj(x))


class NonlinAttention(nn.Module):
    """Like a convolution module, but the "convolution" is a multiplication by the (first head's)
    attention weights: ``out = Linear(y * (weights @ (x * tanh(s))))`` with s, x, y three
    projections of the input.

    Shapes: x (T, N, C); weights (1, N, T, T2); output (T, N, C).
    """

    def __init__(self, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.in_proj = nn.Linear(channels, hidden_channels * 3, bias=True)
        # Well-trained instances have large pre-tanh values; push toward that regime.
        self.balancer = Balancer(
            hidden_channels,
            channel_dim=-1,
            min_positive=ScheduledFloat((0.0, 0.25), (20000.0, 0.05)),
            max_positive=ScheduledFloat((0.0, 0.75), (20000.0, 0.95)),
            min_abs=0.5,
            max_abs=5.0,
        )
        self.tanh = nn.Tanh()
        self.out_proj = ScaledLinear(hidden_channels, channels, bias=True, initial_scale=0.05)
        self.whiten1 = Whiten(
            num_groups=1, whitening_limit=_whitening_schedule(5.0), prob=(0.025, 0.25),
            grad_scale=0.01,
        )  # fmt: skip
        self.whiten2 = Whiten(
            num_groups=1,
            whitening_limit=_whitening_schedule(5.0, ratio=3.0),
            prob=(0.025, 0.25),
            grad_scale=0.01,
        )

    def _gated_input(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        s, v, y = self.in_proj(x).chunk(3, dim=2)
        s = self.tanh(self.balancer(s))
        v = self.whiten1(v) * s
        return v, y

    def _mix(self, v: Tensor, attn_weights: Tensor, num_queries: int) -> Tensor:
        # v: (T2, N, D) -> (H, N, T2, D / H) -> weights @ v -> (T1, N, D)
        num_heads = attn_weights.shape[0]
        num_keys, batch_size, _ = v.shape
        v = v.reshape(num_keys, batch_size, num_heads, -1).permute(2, 1, 0, 3)
        out = torch.matmul(attn_weights, v)
        return out.permute(2, 1, 0, 3).reshape(num_queries, batch_size, -1)

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        v, y = self._gated_input(x)
        out = self._mix(v, attn_weights, x.shape[0]) * y
        return self.whiten2(self.out_proj(out))

    def streaming_forward(
        self, x: Tensor, attn_weights: Tensor, cached_x: Tensor, left_context_len: int
    ) -> Tuple[Tensor, Tensor]:
        """cached_x: (1, N, left_context_len, hidden_channels) gated inputs of earlier frames."""
        v, y = self._gated_input(x)
        num_queries, batch_size, _ = v.shape
        # The cache is stored head-major, as (H=1, N, T, D).
        v = v.reshape(num_queries, batch_size, 1, -1).permute(2, 1, 0, 3)
        v = torch.cat((cached_x, v), dim=2)
        new_cached_x = v[:, :, v.shape[2] - left_context_len :, :]
        out = torch.matmul(attn_weights, v)
        out = out.permute(2, 1, 0, 3).reshape(num_queries, batch_size, -1) * y
        return self.out_proj(out), new_cached_x


class _DepthwiseConv1d(nn.Conv1d):
    """Non-causal depthwise Conv1d with the same call signature as
    :class:`ChunkCausalDepthwiseConv1d` (chunking is rejected: the model was built non-causal)."""

    def forward(self, x: Tensor, chunk_size: int = -1) -> Tensor:
        return self._conv_forward(x, self.weight, self.bias)

    def streaming_forward(self, x: Tensor, cache: Tensor) -> Tuple[Tensor, Tensor]:
        raise RuntimeError("streaming needs a model built with --causal 1")


class ConvolutionModule(nn.Module):
    """Gated (GLU-like) pointwise projection -> depthwise conv over time -> SwooshR -> Linear.

    The depthwise conv is chunk-causal when ``causal`` (see :class:`ChunkCausalDepthwiseConv1d`).
    Padded frames are zeroed before the conv so they cannot leak into valid frames.

    Shapes: x (T, N, C); key padding mask (N, T); output (T, N, C).
    """

    def __init__(self, channels: int, kernel_size: int, causal: bool) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"convolution kernel size must be odd, got {kernel_size}")
        self.causal = causal
        self.in_proj = nn.Linear(channels, 2 * channels)
        self.balancer1 = Balancer(
            channels,
            channel_dim=-1,
            min_positive=ScheduledFloat((0.0, 0.05), (8000.0, 0.025)),
            max_positive=1.0,
            min_abs=1.5,
            max_abs=ScheduledFloat((0.0, 5.0), (8000.0, 10.0), default=1.0),
        )
        self.sigmoid = nn.Sigmoid()
        if causal:
            self.depthwise_conv: nn.Module = ChunkCausalDepthwiseConv1d(channels, kernel_size)
        else:
            self.depthwise_conv = _DepthwiseConv1d(
                channels, channels, kernel_size, groups=channels, padding=kernel_size // 2
            )
        self.balancer2 = Balancer(
            channels,
            channel_dim=1,
            min_positive=ScheduledFloat((0.0, 0.1), (8000.0, 0.05)),
            max_positive=1.0,
            min_abs=ScheduledFloat((0.0, 0.2), (20000.0, 0.5)),
            max_abs=10.0,
        )
        self.whiten = Whiten(
            num_groups=1, whitening_limit=_whitening_schedule(7.5), prob=(0.025, 0.25),
            grad_scale=0.01,
        )  # fmt: skip
        self.out_proj = ActivationDropoutAndLinear(
            channels, channels, activation="SwooshR", dropout_p=0.0, initial_scale=0.05
        )

    def _gate(self, x: Tensor, src_key_padding_mask: Optional[Tensor]) -> Tensor:
        # (T, N, C) -> gated (N, C, T) with padded frames zeroed
        x, s = self.in_proj(x).chunk(2, dim=2)
        x = x * self.sigmoid(self.balancer1(s))
        x = x.permute(1, 2, 0)
        if src_key_padding_mask is not None:
            x = x.masked_fill(src_key_padding_mask.unsqueeze(1), 0.0)
        return x

    def forward(
        self, x: Tensor, src_key_padding_mask: Optional[Tensor] = None, chunk_size: int = -1
    ) -> Tensor:
        """chunk_size: frames per chunk for chunk-causal conv (-1: whole utterance)."""
        if chunk_size >= 0 and not self.causal:
            raise ValueError("chunked convolution needs a model built with --causal 1")
        x = self._gate(x, src_key_padding_mask)
        x = self.balancer2(self.depthwise_conv(x, chunk_size))
        x = x.permute(2, 0, 1)
        return self.out_proj(self.whiten(x))

    def streaming_forward(
        self, x: Tensor, cache: Tensor, src_key_padding_mask: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """cache: (N, C, kernel_size // 2); src_key_padding_mask: (N, T) for this chunk."""
        x = self._gate(x, src_key_padding_mask)
        x, new_cache = self.depthwise_conv.streaming_forward(x, cache)
        return self.out_proj(x.permute(2, 0, 1)), new_cache


class Zipformer2EncoderLayer(nn.Module):
    """One Zipformer2 layer; (T, N, C) -> (T, N, C).

    Order: attention weights; FF1; non-linear attention; self-attention 1; conv 1; FF2;
    mid-layer bypass; self-attention 2; conv 2; FF3; BiasNorm; layer bypass.
    In training, each residual branch may be dropped per sequence with a scheduled rate.
    """

    def __init__(
        self,
        embed_dim: int,
        pos_dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        value_head_dim: int,
        feedforward_dim: int,
        dropout: FloatLike = 0.1,
        cnn_module_kernel: int = 31,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        # skip_rate is overwritten per layer by Zipformer2Encoder (layer-drop warm-up).
        self.bypass = BypassModule(embed_dim, skip_rate=0.0)
        self.bypass_mid = BypassModule(embed_dim)

        # Per-sequence drop rates of the residual branches; they vanish as training proceeds.
        self.attention_skip_rate = _skip_schedule((0.0, 0.2), (4000.0, 0.05), (16000, 0.0))
        self.conv_skip_rate = _skip_schedule((0.0, 0.2), (4000.0, 0.05), (16000, 0.0))
        self.const_attention_rate = _skip_schedule((0.0, 0.25), (4000.0, 0.025))
        # Stop FF2/FF3 outputs from growing too large relative to their residual early on.
        self.ff2_skip_rate = _skip_schedule((0.0, 0.1), (4000.0, 0.01), (50000.0, 0.0))
        self.ff3_skip_rate = _skip_schedule((0.0, 0.1), (4000.0, 0.01), (50000.0, 0.0))

        self.self_attn_weights = RelPositionMultiheadAttentionWeights(
            embed_dim, pos_dim, num_heads, query_head_dim, pos_head_dim, dropout=0.0
        )
        self.self_attn1 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.self_attn2 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.feed_forward1 = FeedforwardModule(embed_dim, (feedforward_dim * 3) // 4, dropout)
        self.feed_forward2 = FeedforwardModule(embed_dim, feedforward_dim, dropout)
        self.feed_forward3 = FeedforwardModule(embed_dim, (feedforward_dim * 5) // 4, dropout)
        self.nonlin_attention = NonlinAttention(embed_dim, hidden_channels=3 * embed_dim // 4)
        self.conv_module1 = ConvolutionModule(embed_dim, cnn_module_kernel, causal=causal)
        self.conv_module2 = ConvolutionModule(embed_dim, cnn_module_kernel, causal=causal)
        self.norm = BiasNorm(embed_dim)

        self.balancer1 = Balancer(
            embed_dim, channel_dim=-1, min_positive=0.45, max_positive=0.55, min_abs=0.2,
            max_abs=4.0,
        )  # fmt: skip
        self.balancer_na = Balancer(
            embed_dim,
            channel_dim=-1,
            min_positive=0.3,
            max_positive=0.7,
            min_abs=ScheduledFloat((0.0, 0.004), (4000.0, 0.02)),
            prob=0.05,
        )
        # Rarely applied: fixes occasional collapse of FF2/FF3 outputs to tiny values.
        self.balancer_ff2 = Balancer(
            embed_dim,
            channel_dim=-1,
            min_positive=0.3,
            max_positive=0.7,
            min_abs=ScheduledFloat((0.0, 0.0), (4000.0, 0.1), default=0.0),
            max_abs=2.0,
            prob=0.05,
        )
        self.balancer_ff3 = Balancer(
            embed_dim,
            channel_dim=-1,
            min_positive=0.3,
            max_positive=0.7,
            min_abs=ScheduledFloat((0.0, 0.0), (4000.0, 0.2), default=0.0),
            max_abs=4.0,
            prob=0.05,
        )
        self.whiten = Whiten(
            num_groups=1,
            whitening_limit=_whitening_schedule(4.0, ratio=3.0),
            prob=(0.025, 0.25),
            grad_scale=0.01,
        )
        self.balancer2 = Balancer(
            embed_dim, channel_dim=-1, min_positive=0.45, max_positive=0.55, min_abs=0.1,
            max_abs=4.0,
        )  # fmt: skip

    @torch.jit.unused
    def _constant_attention(self, attn_weights: Tensor) -> Tensor:
        """With a scheduled probability, replace the weights by a uniform average over the
        allowed keys, nudging the non-linear attention toward time-averaging early on."""
        if random.random() >= float(self.const_attention_rate):
            return attn_weights
        allowed = (attn_weights > 0.0).to(attn_weights.dtype)
        return allowed / allowed.sum(dim=-1, keepdim=True)

    def forward(
        self,
        src: Tensor,
        pos_emb: Tensor,
        chunk_size: int = -1,
        attn_mask: Optional[Tensor] = None,
        src_key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """
        Args:
            src: (T, N, C).
            pos_emb: (1, 2T - 1, pos_dim).
            chunk_size: frames per chunk for the chunk-causal convolutions, -1 for none.
            attn_mask: (T, T) bool, True = not allowed (query, key).
            src_key_padding_mask: (N, T) bool, True = padding.
        Returns:
            (T, N, C).
        """
        src_orig = src
        attn_weights = self.self_attn_weights(
            src, pos_emb, key_padding_mask=src_key_padding_mask, attn_mask=attn_mask
        )
        src = src + self.feed_forward1(src)

        na_weights = attn_weights[0:1]
        attn_keep: Optional[Tensor] = None
        conv1_keep: Optional[Tensor] = None
        conv2_keep: Optional[Tensor] = None
        ff2_keep: Optional[Tensor] = None
        ff3_keep: Optional[Tensor] = None
        if not torch.jit.is_scripting() and not torch.jit.is_tracing() and self.training:
            attn_keep = _sequence_keep_mask(src, float(self.attention_skip_rate))
            conv1_keep = _sequence_keep_mask(src, float(self.conv_skip_rate))
            conv2_keep = _sequence_keep_mask(src, float(self.conv_skip_rate))
            ff2_keep = _sequence_keep_mask(src, float(self.ff2_skip_rate))
            ff3_keep = _sequence_keep_mask(src, float(self.ff3_skip_rate))
            na_weights = self._constant_attention(na_weights)

        na = self.balancer_na(self.nonlin_attention(src, na_weights))
        src = src + _apply_mask(na, attn_keep)
        src = src + _apply_mask(self.self_attn1(src, attn_weights), attn_keep)
        conv = self.conv_module1(src, src_key_padding_mask, chunk_size)
        src = src + _apply_mask(conv, conv1_keep)
        src = src + _apply_mask(self.balancer_ff2(self.feed_forward2(src)), ff2_keep)

        src = self.bypass_mid(src_orig, src)

        src = src + _apply_mask(self.self_attn2(src, attn_weights), attn_keep)
        conv = self.conv_module2(src, src_key_padding_mask, chunk_size)
        src = src + _apply_mask(conv, conv2_keep)
        src = src + _apply_mask(self.balancer_ff3(self.feed_forward3(src)), ff3_keep)

        src = self.norm(self.balancer1(src))
        src = self.bypass(src_orig, src)
        return self.whiten(self.balancer2(src))

    def streaming_forward(
        self,
        src: Tensor,
        pos_emb: Tensor,
        cached_key: Tensor,
        cached_nonlin_attn: Tensor,
        cached_val1: Tensor,
        cached_val2: Tensor,
        cached_conv1: Tensor,
        cached_conv2: Tensor,
        left_context_len: int,
        src_key_padding_mask: Tensor,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """One chunk through the layer (eval-mode maths of :meth:`forward`).

        Args:
            src: (T, N, C) the chunk.
            pos_emb: (1, left_context_len + 2T - 1, pos_dim).
            cached_key: (L, N, H * Dq); cached_nonlin_attn: (1, N, L, 3C/4);
            cached_val1, cached_val2: (L, N, H * Dv); cached_conv1, cached_conv2:
                (N, C, kernel // 2); L = left_context_len.
            src_key_padding_mask: (N, L + T) bool, True = masked (unfilled cache or padding).
        Returns:
            (T, N, C) output and the six updated caches, in the argument order.
        """
        src_orig = src
        chunk_mask = src_key_padding_mask[:, left_context_len:]
        attn_weights, cached_key = self.self_attn_weights.streaming_forward(
            src, pos_emb, cached_key, left_context_len, src_key_padding_mask
        )
        src = src + self.feed_forward1(src)
        na, cached_nonlin_attn = self.nonlin_attention.streaming_forward(
            src, attn_weights[0:1], cached_nonlin_attn, left_context_len
        )
        src = src + na
        attn_out, cached_val1 = self.self_attn1.streaming_forward(
            src, attn_weights, cached_val1, left_context_len
        )
        src = src + attn_out
        conv, cached_conv1 = self.conv_module1.streaming_forward(src, cached_conv1, chunk_mask)
        src = src + conv
        src = src + self.feed_forward2(src)

        src = self.bypass_mid(src_orig, src)

        attn_out, cached_val2 = self.self_attn2.streaming_forward(
            src, attn_weights, cached_val2, left_context_len
        )
        src = src + attn_out
        conv, cached_conv2 = self.conv_module2.streaming_forward(src, cached_conv2, chunk_mask)
        src = src + conv
        src = src + self.feed_forward3(src)

        src = self.bypass(src_orig, self.norm(src))
        return (
            src,
            cached_key,
            cached_nonlin_attn,
            cached_val1,
            cached_val2,
            cached_conv1,
            cached_conv2,
        )


class Zipformer2Encoder(nn.Module):
    """A stack of :class:`Zipformer2EncoderLayer` at one frame rate, with its positional encoding.

    Layer drop warms up stack by stack: layer i's skip rate falls from
    ``initial_layerdrop_rate`` to ``final_layerdrop_rate`` over its slice of
    ``[warmup_begin, warmup_end]`` batches.
    """

    def __init__(
        self,
        layers: List[Zipformer2EncoderLayer],
        pos_dim: int,
        warmup_begin: float,
        warmup_end: float,
        initial_layerdrop_rate: float = 0.5,
        final_layerdrop_rate: float = 0.05,
    ) -> None:
        super().__init__()
        if not 0 <= warmup_begin <= warmup_end:
            raise ValueError(f"bad layer-drop warm-up range ({warmup_begin}, {warmup_end})")
        self.encoder_pos = CompactRelPositionalEncoding(pos_dim, dropout_rate=0.15)
        self.layers = nn.ModuleList(layers)
        self.num_layers = len(layers)
        self.states_per_layer = NUM_STATES_PER_LAYER  # an attribute so TorchScript can read it
        step = (warmup_end - warmup_begin) / self.num_layers
        for i, layer in enumerate(layers):
            begin = warmup_begin + i * step
            layer.bypass.skip_rate = ScheduledFloat(
                (begin, initial_layerdrop_rate), (begin + step, final_layerdrop_rate), default=0.0
            )

    def forward(
        self,
        src: Tensor,
        chunk_size: int = -1,
        feature_mask: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        src_key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """
        Args:
            src: (T, N, C).
            chunk_size: frames per chunk at this stack's rate, -1 for none.
            feature_mask: (1, N, C) 0/1 training-time channel mask, applied after every layer.
            attn_mask: (T, T) bool, True = not allowed.
            src_key_padding_mask: (N, T) bool, True = padding.
        Returns:
            (T, N, C).
        """
        pos_emb = self.encoder_pos(src)
        output = src
        if feature_mask is not None:
            output = output * feature_mask
        for layer in self.layers:
            output = layer(output, pos_emb, chunk_size, attn_mask, src_key_padding_mask)
            if feature_mask is not None:
                output = output * feature_mask
        return output

    def streaming_forward(
        self,
        src: Tensor,
        states: List[Tensor],
        left_context_len: int,
        src_key_padding_mask: Tensor,
    ) -> Tuple[Tensor, List[Tensor]]:
        """One chunk; ``states`` holds 6 tensors per layer (see
        :meth:`Zipformer2EncoderLayer.streaming_forward`). Returns output and new states."""
        pos_emb = self.encoder_pos(src, left_context_len)
        output = src
        new_states: List[Tensor] = []
        for i, layer in enumerate(self.layers):
            base = i * self.states_per_layer
            (
                output,
                cached_key,
                cached_nonlin_attn,
                cached_val1,
                cached_val2,
                cached_conv1,
                cached_conv2,
            ) = layer.streaming_forward(
                output,
                pos_emb,
                states[base],
                states[base + 1],
                states[base + 2],
                states[base + 3],
                states[base + 4],
                states[base + 5],
                left_context_len,
                src_key_padding_mask,
            )
            new_states += [
                cached_key,
                cached_nonlin_attn,
                cached_val1,
                cached_val2,
                cached_conv1,
                cached_conv2,
            ]
        return output, new_states


class SimpleDownsample(nn.Module):
    """Downsamples time by ``downsample`` with a learned softmax-weighted average of each group
    of frames; (T, N, C) -> (ceil(T / ds), N, C). The end is padded by repeating the last frame.
    """

    def __init__(self, downsample: int, dropout: FloatLike = 0.0) -> None:
        super().__init__()
        self.downsample = downsample
        self.bias = nn.Parameter(torch.zeros(downsample))
        self.dropout = dropout  # kept for parity with icefall's signature; not used

    def forward(self, src: Tensor) -> Tensor:
        seq_len, batch_size, channels = src.shape
        ds = self.downsample
        out_len = (seq_len + ds - 1) // ds
        pad = out_len * ds - seq_len
        # Branch-free so that traced (ONNX) graphs stay valid for every length.
        src = torch.cat((src, src[seq_len - 1 :].expand(pad, batch_size, channels)), dim=0)
        src = src.reshape(out_len, ds, batch_size, channels)
        weights = self.bias.softmax(dim=0).unsqueeze(-1).unsqueeze(-1)  # (ds, 1, 1)
        return (src * weights).sum(dim=1)


class SimpleUpsample(nn.Module):
    """Repeats every frame ``upsample`` times: (T, N, C) -> (T * upsample, N, C)."""

    def __init__(self, upsample: int) -> None:
        super().__init__()
        self.upsample = upsample

    def forward(self, src: Tensor) -> Tensor:
        seq_len, batch_size, channels = src.shape
        src = src.unsqueeze(1).expand(seq_len, self.upsample, batch_size, channels)
        return src.reshape(seq_len * self.upsample, batch_size, channels)


class DownsampledZipformer2Encoder(nn.Module):
    """Runs a :class:`Zipformer2Encoder` at ``1 / downsample`` of the input frame rate:
    downsample, encode, upsample, then a learned bypass with the input. (T, N, C) -> (T, N, C).
    """

    def __init__(self, encoder: Zipformer2Encoder, dim: int, downsample: int) -> None:
        super().__init__()
        self.downsample_factor = downsample
        self.downsample = SimpleDownsample(downsample)
        self.num_layers = encoder.num_layers
        self.encoder = encoder
        self.upsample = SimpleUpsample(downsample)
        self.out_combiner = BypassModule(dim)

    def forward(
        self,
        src: Tensor,
        chunk_size: int = -1,
        feature_mask: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        src_key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """As :meth:`Zipformer2Encoder.forward`, except ``src_key_padding_mask`` must already be
        at the reduced rate ((N, ceil(T / ds)), see :meth:`Zipformer2.forward`)."""
        src_orig = src
        ds = self.downsample_factor
        src = self.downsample(src)
        if attn_mask is not None:
            attn_mask = attn_mask[::ds, ::ds]
        src = self.encoder(
            src,
            chunk_size=chunk_size // ds,
            feature_mask=feature_mask,
            attn_mask=attn_mask,
            src_key_padding_mask=src_key_padding_mask,
        )
        src = self.upsample(src)[: src_orig.shape[0]]
        return self.out_combiner(src_orig, src)

    def streaming_forward(
        self,
        src: Tensor,
        states: List[Tensor],
        left_context_len: int,
        src_key_padding_mask: Tensor,
    ) -> Tuple[Tensor, List[Tensor]]:
        """One chunk (length a multiple of the downsampling factor)."""
        src_orig = src
        src = self.downsample(src)
        src, new_states = self.encoder.streaming_forward(
            src, states, left_context_len, src_key_padding_mask
        )
        src = self.upsample(src)[: src_orig.shape[0]]
        return self.out_combiner(src_orig, src), new_states


def _expand_per_stack(name: str, value, num_stacks: int) -> List[int]:
    if isinstance(value, int):
        value = [value]
    value = [int(v) for v in value]
    if len(value) == 1:
        value = value * num_stacks
    if len(value) != num_stacks:
        raise ValueError(
            f"{name} has {len(value)} values but downsampling_factor has {num_stacks} stacks"
        )
    return value


class Zipformer2(nn.Module):
    """The Zipformer2 encoder (after the :class:`Conv2dSubsampling` front end).

    Per-stack arguments accept one int (used for every stack) or one value per stack; the
    number of stacks is ``len(downsampling_factor)``.

    Args:
        output_downsampling_factor: extra downsampling of the output; must be 2.
        downsampling_factor: frame-rate reduction of each stack, e.g. (1, 2, 4, 8, 4, 2).
        encoder_dim: width of each stack; the output width is ``max(encoder_dim)``.
        num_encoder_layers: layers per stack.
        encoder_unmasked_dim: channels never masked by training-time feature masking
            (<= encoder_dim).
        query_head_dim, pos_head_dim, value_head_dim, num_heads: attention sizes per stack.
        feedforward_dim: hidden size of the middle feed-forward module (the first uses 3/4 and
            the last 5/4 of it).
        cnn_module_kernel: odd depthwise kernel size of the convolution modules.
        pos_dim: positional embedding size.
        dropout: dropout rate (float or schedule); default decays 0.3 -> 0.1 over 20k batches.
        warmup_batches: batches over which layer drop warms up stack by stack.
        causal: chunk-causal model (streaming).
        chunk_size: training chunk sizes in frames at the front end's rate, drawn at random per
            batch; -1 = full context. Only the first entry is used under TorchScript.
        left_context_frames: training left contexts in frames, drawn at random per batch; the
            first entry also sets the streaming cache length.
    """

    def __init__(
        self,
        output_downsampling_factor: int = 2,
        downsampling_factor: Tuple[int, ...] = (2, 4),
        encoder_dim=384,
        num_encoder_layers=4,
        encoder_unmasked_dim=256,
        query_head_dim=24,
        pos_head_dim=4,
        value_head_dim=12,
        num_heads=8,
        feedforward_dim=1536,
        cnn_module_kernel=31,
        pos_dim: int = 192,
        dropout: Optional[FloatLike] = None,
        warmup_batches: float = 4000.0,
        causal: bool = False,
        chunk_size: Tuple[int, ...] = (-1,),
        left_context_frames: Tuple[int, ...] = (-1,),
    ) -> None:
        super().__init__()
        if output_downsampling_factor != 2:
            raise ValueError(
                f"output_downsampling_factor must be 2, got {output_downsampling_factor}"
            )
        if dropout is None:
            dropout = ScheduledFloat((0.0, 0.3), (20000.0, 0.1))
        downsampling_factor = [int(d) for d in downsampling_factor]
        num_stacks = len(downsampling_factor)
        if num_stacks == 0 or any(d < 1 for d in downsampling_factor):
            raise ValueError(
                f"downsampling_factor must be positive ints, got {downsampling_factor}"
            )

        def per_stack(name: str, value) -> List[int]:
            return _expand_per_stack(name, value, num_stacks)

        self.output_downsampling_factor = output_downsampling_factor
        self.downsampling_factor: List[int] = downsampling_factor
        self.encoder_dim: List[int] = per_stack("encoder_dim", encoder_dim)
        self.encoder_unmasked_dim: List[int] = per_stack(
            "encoder_unmasked_dim", encoder_unmasked_dim
        )
        self.num_encoder_layers: List[int] = per_stack("num_encoder_layers", num_encoder_layers)
        self.query_head_dim: List[int] = per_stack("query_head_dim", query_head_dim)
        self.value_head_dim: List[int] = per_stack("value_head_dim", value_head_dim)
        self.pos_head_dim: List[int] = per_stack("pos_head_dim", pos_head_dim)
        self.num_heads: List[int] = per_stack("num_heads", num_heads)
        self.feedforward_dim: List[int] = per_stack("feedforward_dim", feedforward_dim)
        self.cnn_module_kernel: List[int] = per_stack("cnn_module_kernel", cnn_module_kernel)
        self.pos_dim = pos_dim
        self.causal = causal
        self.chunk_size: List[int] = [int(c) for c in chunk_size]
        self.left_context_frames: List[int] = [int(c) for c in left_context_frames]
        self.output_dim = max(self.encoder_dim)
        self.states_per_layer = NUM_STATES_PER_LAYER  # an attribute so TorchScript can read it
        self._check_config()

        self.encoders = nn.ModuleList(
            [self._make_stack(i, dropout, warmup_batches) for i in range(num_stacks)]
        )
        self.downsample_output = SimpleDownsample(output_downsampling_factor)

    def _make_stack(self, i: int, dropout: FloatLike, warmup_batches: float) -> nn.Module:
        """Stack ``i``: its layers, layer-drop warm-up and (if its factor is not 1) the
        down/upsampling around it."""
        num_stacks = len(self.downsampling_factor)
        layers = [
            Zipformer2EncoderLayer(
                embed_dim=self.encoder_dim[i],
                pos_dim=self.pos_dim,
                num_heads=self.num_heads[i],
                query_head_dim=self.query_head_dim[i],
                pos_head_dim=self.pos_head_dim[i],
                value_head_dim=self.value_head_dim[i],
                feedforward_dim=self.feedforward_dim[i],
                dropout=dropout,
                cnn_module_kernel=self.cnn_module_kernel[i],
                causal=self.causal,
            )
            for _ in range(self.num_encoder_layers[i])
        ]
        # The front end learns alone first; the stacks then warm up one after another.
        encoder: nn.Module = Zipformer2Encoder(
            layers,
            pos_dim=self.pos_dim,
            warmup_begin=warmup_batches * (i + 1) / (num_stacks + 1),
            warmup_end=warmup_batches * (i + 2) / (num_stacks + 1),
            final_layerdrop_rate=0.035 * (self.downsampling_factor[i] ** 0.5),
        )
        if self.downsampling_factor[i] != 1:
            encoder = DownsampledZipformer2Encoder(
                encoder, dim=self.encoder_dim[i], downsample=self.downsampling_factor[i]
            )
        return encoder

    def _check_config(self) -> None:
        for i, (dim, unmasked) in enumerate(zip(self.encoder_dim, self.encoder_unmasked_dim)):
            if unmasked > dim:
                raise ValueError(
                    f"encoder_unmasked_dim[{i}]={unmasked} exceeds encoder_dim[{i}]={dim}"
                )
        for name in (
            "encoder_dim",
            "encoder_unmasked_dim",
            "num_encoder_layers",
            "query_head_dim",
            "value_head_dim",
            "pos_head_dim",
            "num_heads",
            "feedforward_dim",
            "cnn_module_kernel",
        ):
            values = getattr(self, name)
            if any(v <= 0 for v in values):
                raise ValueError(f"{name} must be positive, got {values}")
        for i, k in enumerate(self.cnn_module_kernel):
            if k % 2 != 1:
                raise ValueError(f"cnn_module_kernel[{i}]={k} must be odd")
        if self.pos_dim <= 0 or self.pos_dim % 2 != 0:
            raise ValueError(f"pos_dim must be a positive even number, got {self.pos_dim}")
        if not self.causal:
            return
        if not self.chunk_size or not self.left_context_frames:
            raise ValueError("chunk_size and left_context_frames must not be empty")
        for c in self.chunk_size:
            if c == 0 or c < -1:
                raise ValueError(f"chunk_size entries must be positive or -1, got {c}")
            if c > 0 and any(c % d != 0 for d in self.downsampling_factor):
                raise ValueError(
                    f"chunk_size {c} must be a multiple of every downsampling factor "
                    f"{self.downsampling_factor}"
                )
            if c > 0 and c % self.output_downsampling_factor != 0:
                raise ValueError(f"chunk_size {c} must be even")
        for f in self.left_context_frames:
            if f == 0 or f < -1:
                raise ValueError(f"left_context_frames entries must be positive or -1, got {f}")

    # ---------------------------------------------------------------------------------------
    # Full-utterance (and simulated-streaming) forward
    # ---------------------------------------------------------------------------------------

    @torch.jit.unused
    def get_feature_masks(self, x: Tensor) -> List[Tensor]:
        """Training-time channel masks, one (1, N, C_i) per stack.

        On ~12.5% of sequences the upper half of the channels above ``encoder_unmasked_dim`` is
        zeroed, on ~23% all of them, so the model also works as a narrower model. Masks agree
        across stacks. x: (T, N, C_0).
        """
        batch_size = x.shape[1]
        drop_prob = 0.125
        mask1 = (torch.rand(1, batch_size, 1, device=x.device) > drop_prob).to(x.dtype)
        mask2 = mask1 * (torch.rand(1, batch_size, 1, device=x.device) > drop_prob).to(x.dtype)
        masks = []
        for dim, unmasked in zip(self.encoder_dim, self.encoder_unmasked_dim):
            mask = torch.ones(1, batch_size, dim, dtype=x.dtype, device=x.device)
            middle = unmasked + (dim - unmasked) // 2
            mask[:, :, unmasked:middle] *= mask1
            mask[:, :, middle:] *= mask2
            masks.append(mask)
        return masks

    def get_chunk_info(self) -> Tuple[int, int]:
        """(chunk_size, left_context_chunks) for this batch; (-1, -1) means full context.

        Drawn at random from the configured lists in training; in eval mode and under
        TorchScript/tracing the first entries are used, so decoding is deterministic and
        matches the chunk named in decode.py's file names and in exported models.
        """
        if not self.causal:
            return -1, -1
        if torch.jit.is_scripting() or torch.jit.is_tracing() or not self.training:
            chunk_size = self.chunk_size[0]
            left_context_frames = self.left_context_frames[0]
        else:
            chunk_size = random.choice(self.chunk_size)
            left_context_frames = random.choice(self.left_context_frames)
        if chunk_size == -1:
            return -1, -1
        if left_context_frames == -1:
            return chunk_size, -1
        return chunk_size, max(1, left_context_frames // chunk_size)

    def get_attn_mask(
        self, seq_len: int, chunk_size: int, left_context_chunks: int, device: torch.device
    ) -> Optional[Tensor]:
        """Chunk attention mask (T, T) bool, True = query may not see key; None if no chunking.

        A frame sees its own chunk and ``left_context_chunks`` chunks before it (-1: all).
        """
        if chunk_size <= 0:
            return None
        if left_context_chunks >= 0:
            for i in range(len(self.encoder_dim)):
                needed = (self.cnn_module_kernel[i] // 2) * self.downsampling_factor[i]
                if chunk_size * left_context_chunks < needed:
                    raise ValueError(
                        f"left context {chunk_size * left_context_chunks} frames is shorter than "
                        f"the convolution context of stack {i} ({needed} frames)"
                    )
        else:
            left_context_chunks = 1000000
        chunk_index = torch.div(
            torch.arange(seq_len, device=device), chunk_size, rounding_mode="floor"
        )
        key_chunk = chunk_index.unsqueeze(0)
        query_chunk = chunk_index.unsqueeze(1)
        return (key_chunk > query_chunk) | (key_chunk < query_chunk - left_context_chunks)

    def _combine_outputs(self, outputs: List[Tensor]) -> Tensor:
        """(T, N, max(encoder_dim)): the last stack's output, extended with the higher channels
        of the most recent stack that has them."""
        pieces = [outputs[-1]]
        cur_dim = self.encoder_dim[-1]
        for i in range(len(outputs) - 2, -1, -1):
            dim = self.encoder_dim[i]
            if dim > cur_dim:
                pieces.append(outputs[i][..., cur_dim:dim])
                cur_dim = dim
        return torch.cat(pieces, dim=-1)

    def forward(
        self,
        x: Tensor,
        x_lens: Tensor,
        src_key_padding_mask: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        """
        Args:
            x: (T, N, encoder_dim[0]) front-end output, time-major.
            x_lens: (N,) valid frames.
            src_key_padding_mask: (N, T) bool, True = padding; may be None.
        Returns:
            (ceil(T / 2), N, max(encoder_dim)) and (N,) output lengths ``(x_lens + 1) // 2``.
        """
        chunk_size, left_context_chunks = self.get_chunk_info()
        attn_mask = self.get_attn_mask(x.shape[0], chunk_size, left_context_chunks, x.device)
        feature_masks: Optional[List[Tensor]] = None
        if not torch.jit.is_scripting() and not torch.jit.is_tracing() and self.training:
            feature_masks = self.get_feature_masks(x)

        outputs: List[Tensor] = []
        for i, module in enumerate(self.encoders):
            ds = self.downsampling_factor[i]
            x = convert_num_channels(x, self.encoder_dim[i])
            feature_mask: Optional[Tensor] = None
            if feature_masks is not None:
                feature_mask = feature_masks[i]
            stack_padding_mask: Optional[Tensor] = None
            if src_key_padding_mask is not None:
                stack_padding_mask = src_key_padding_mask[:, ::ds]
            x = module(
                x,
                chunk_size=chunk_size,
                feature_mask=feature_mask,
                attn_mask=attn_mask,
                src_key_padding_mask=stack_padding_mask,
            )
            outputs.append(x)

        x = self.downsample_output(self._combine_outputs(outputs))
        lengths = torch.div(x_lens + 1, 2, rounding_mode="floor")
        return x, lengths

    # ---------------------------------------------------------------------------------------
    # Chunk-by-chunk streaming
    # ---------------------------------------------------------------------------------------

    @torch.jit.export
    def streaming_forward(
        self,
        x: Tensor,
        x_lens: Tensor,
        states: List[Tensor],
        src_key_padding_mask: Tensor,
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """Encode one chunk with cached left context (causal models only).

        Args:
            x: (chunk, N, encoder_dim[0]); chunk a multiple of every downsampling factor and of
                2 (e.g. the training chunk size).
            x_lens: (N,) valid frames in the chunk.
            states: 6 tensors per layer, stacks in order (see :meth:`get_init_states`).
            src_key_padding_mask: (N, left_context_frames[0] + chunk) bool, True = masked: the
                not-yet-filled part of the cache, then padding in the chunk.
        Returns:
            (chunk / 2, N, max(encoder_dim)), (N,) output lengths and the new states.
        """
        outputs: List[Tensor] = []
        new_states: List[Tensor] = []
        layer_offset = 0
        for i, module in enumerate(self.encoders):
            num_layers = self.num_encoder_layers[i]
            ds = self.downsampling_factor[i]
            x = convert_num_channels(x, self.encoder_dim[i])
            begin = layer_offset * self.states_per_layer
            end = (layer_offset + num_layers) * self.states_per_layer
            x, stack_states = module.streaming_forward(
                x,
                states[begin:end],
                self.left_context_frames[0] // ds,
                src_key_padding_mask[:, ::ds],
            )
            layer_offset += num_layers
            outputs.append(x)
            new_states += stack_states

        x = self.downsample_output(self._combine_outputs(outputs))
        lengths = torch.div(x_lens + 1, 2, rounding_mode="floor")
        return x, lengths, new_states

    @torch.jit.export
    def get_init_states(
        self, batch_size: int = 1, device: torch.device = torch.device("cpu")
    ) -> List[Tensor]:
        """Zero streaming state: for every layer, stacks in order,
        (cached_key (L, N, H*Dq), cached_nonlin_attn (1, N, L, 3C/4), cached_val1 (L, N, H*Dv),
        cached_val2 (L, N, H*Dv), cached_conv1 (N, C, k//2), cached_conv2 (N, C, k//2)) with
        L = left_context_frames[0] // downsampling_factor of the stack."""
        states: List[Tensor] = []
        for i in range(len(self.encoder_dim)):
            dim = self.encoder_dim[i]
            left = self.left_context_frames[0] // self.downsampling_factor[i]
            key_dim = self.query_head_dim[i] * self.num_heads[i]
            value_dim = self.value_head_dim[i] * self.num_heads[i]
            conv_pad = self.cnn_module_kernel[i] // 2
            for _ in range(self.num_encoder_layers[i]):
                states += [
                    torch.zeros(left, batch_size, key_dim, device=device),
                    torch.zeros(1, batch_size, left, 3 * dim // 4, device=device),
                    torch.zeros(left, batch_size, value_dim, device=device),
                    torch.zeros(left, batch_size, value_dim, device=device),
                    torch.zeros(batch_size, dim, conv_pad, device=device),
                    torch.zeros(batch_size, dim, conv_pad, device=device),
                ]
        return states
