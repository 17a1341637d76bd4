"""Transducer (pruned RNN-T) and CTC model wrapper around an encoder, plus its builder and flags.

The model computes the three training losses icefall's Zipformer recipes use:

* ``simple_loss``: RNN-T loss of a "trivial joiner" (``am + lm`` of two linear heads), cheap to
  compute over the full (T, U) lattice. Its gradients tell where the alignment mass lies, which
  gives the pruning bounds for
* ``pruned_loss``: the real joiner evaluated only on ``prune_range`` symbols per frame;
* ``ctc_loss``: optional CTC head on the encoder output (hybrid training, or CTC only).

All losses are summed over the batch (not averaged), as in icefall; the training loop
normalises by frame count only for logging.
"""

import argparse
from typing import List, Tuple

import torch
import torch.nn as nn

from icefall_lite import rnnt
from icefall_lite.data.filters import conv2d_subsampled_frames
from icefall_lite.models.ctc import ctc_loss_sum
from icefall_lite.models.decoder import Decoder
from icefall_lite.models.joiner import Joiner
from icefall_lite.models.zipformer import (
    add_zipformer_arguments,
    build_zipformer,
    resolve_zipformer_params,
)
from icefall_lite.models.zipformer.scaling import ScaledLinear
from icefall_lite.models.zipformer.streaming import ZipformerStreamingEncoder
from icefall_lite.utils import AttributeDict, make_pad_mask, str2bool


class AsrModel(nn.Module):
    """Encoder + (stateless decoder, joiner) transducer, with an optional CTC head.

    Args:
      encoder_embed: front end mapping (N, T, feature_dim) features and (N,) lengths to
        (N, T', C_embed) and (N,) lengths (e.g. ``Conv2dSubsampling``).
      encoder: sequence encoder taking time-major input ``(T', N, C_embed)``, lengths (N,) and a
        key-padding mask (N, T') (True = padding) and returning ``((T', N, encoder_dim), (N,))``.
      decoder: the prediction network (required when ``use_transducer``).
      joiner: the joint network (required when ``use_transducer``).
      encoder_dim: last dimension of the encoder output.
      decoder_dim: last dimension of the decoder output.
      vocab_size: number of output tokens, blank (id ``decoder.blank_id``, 0 for CTC) included.
      use_transducer: build the simple-loss heads and compute the transducer losses.
      use_ctc: build ``ctc_output`` and compute the CTC loss (blank id 0).
    """

    def __init__(
        self,
        encoder_embed: nn.Module,
        encoder: nn.Module,
        decoder: nn.Module = None,
        joiner: nn.Module = None,
        encoder_dim: int = 384,
        decoder_dim: int = 512,
        vocab_size: int = 500,
        use_transducer: bool = True,
        use_ctc: bool = False,
    ):
        super().__init__()
        if not (use_transducer or use_ctc):
            raise ValueError("AsrModel: at least one of use_transducer / use_ctc must be True")
        if use_transducer and (decoder is None or joiner is None):
            raise ValueError("AsrModel: use_transducer=True needs a decoder and a joiner")

        self.encoder_embed = encoder_embed
        self.encoder = encoder
        self.use_transducer = use_transducer
        self.use_ctc = use_ctc
        self.vocab_size = vocab_size

        if use_transducer:
            self.decoder = decoder
            self.joiner = joiner
            # Small initial heads: the near-uniform simple loss of an untrained model should not
            # push large gradients into the encoder before the pruned loss takes over.
            self.simple_am_proj = ScaledLinear(encoder_dim, vocab_size, initial_scale=0.25)
            self.simple_lm_proj = ScaledLinear(decoder_dim, vocab_size, initial_scale=0.25)
        else:
            self.decoder = None
            self.joiner = None

        if use_ctc:
            self.ctc_output = nn.Sequential(
                nn.Dropout(p=0.1),
                nn.Linear(encoder_dim, vocab_size),
                nn.LogSoftmax(dim=-1),
            )

    def forward_encoder(
        self, x: torch.Tensor, x_lens: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
          x: (N, T, feature_dim) features.
          x_lens: (N,) number of valid frames per utterance.
        Returns:
          encoder_out: (N, T', encoder_dim); encoder_out_lens: (N,) valid output frames.
        """
        x, x_lens = self.encoder_embed(x, x_lens)
        src_key_padding_mask = make_pad_mask(x_lens, x.size(1))
        x = x.permute(1, 0, 2)  # (N, T, C) -> (T, N, C): the encoder is time-major
        encoder_out, encoder_out_lens = self.encoder(x, x_lens, src_key_padding_mask)
        encoder_out = encoder_out.permute(1, 0, 2)
        return encoder_out, encoder_out_lens

    def output_frames(self, num_frames):
        """Encoder output frames for ``num_frames`` input frames (an int or an (N,) tensor):
        the Conv2dSubsampling front end's ``((T - 7) // 2 + 1) // 2``."""
        return conv2d_subsampled_frames(num_frames)

    def streaming_encoder(
        self, chunk_size: int = 0, left_context_frames: int = 0
    ) -> ZipformerStreamingEncoder:
        """The chunk-wise encoder of this causal model (sharing its modules), for streaming
        decoding and export; ``ValueError`` for a non-causal model or unusable sizes.

        Args:
          chunk_size, left_context_frames: in 50 Hz frames; 0: the encoder's first entries.
        """
        return ZipformerStreamingEncoder(
            self.encoder_embed, self.encoder, chunk_size, left_context_frames
        )

    def forward_ctc(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        targets: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
          encoder_out: (N, T', encoder_dim).
          encoder_out_lens: (N,).
          targets: (sum(target_lengths),) concatenated token ids (no blanks).
          target_lengths: (N,).
        Returns:
          CTC loss summed over the batch (scalar).
        """
        log_probs = self.ctc_output(encoder_out)  # (N, T', V)
        return ctc_loss_sum(log_probs, encoder_out_lens, targets, target_lengths)

    def forward_transducer(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        y_padded: torch.Tensor,
        y_lens: torch.Tensor,
        prune_range: int = 5,
        am_scale: float = 0.0,
        lm_scale: float = 0.0,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
          encoder_out: (N, T', encoder_dim).
          encoder_out_lens: (N,).
          y_padded: (N, U) int64 token ids, right-padded (padding value irrelevant).
          y_lens: (N,) number of valid tokens.
          prune_range: symbols kept per frame for the pruned loss.
          am_scale, lm_scale: weights of the am-only / lm-only terms in the smoothed simple loss.
        Returns:
          (simple_loss, pruned_loss), each summed over the batch.
        """
        blank_id = self.decoder.blank_id
        batch_size = y_padded.size(0)
        device = encoder_out.device

        # Prepend blank as start-of-sequence; the decoder's blank embedding is zero, so the
        # padding after each sequence's end does not matter either.
        sos = torch.full((batch_size, 1), blank_id, dtype=torch.int64, device=device)
        sos_y_padded = torch.cat([sos, y_padded], dim=1)  # (N, U + 1)
        decoder_out = self.decoder(sos_y_padded)  # (N, U + 1, decoder_dim)

        boundary = torch.zeros((batch_size, 4), dtype=torch.int64, device=device)
        boundary[:, 2] = y_lens
        boundary[:, 3] = encoder_out_lens

        lm = self.simple_lm_proj(decoder_out)
        am = self.simple_am_proj(encoder_out)

        # The recursions are numerically delicate: always run them in float32.
        with torch.autocast(device_type=device.type, enabled=False):
            simple_loss, (px_grad, py_grad) = rnnt.rnnt_loss_smoothed(
                lm=lm.float(),
                am=am.float(),
                symbols=y_padded,
                termination_symbol=blank_id,
                lm_only_scale=lm_scale,
                am_only_scale=am_scale,
                boundary=boundary,
                reduction="sum",
                return_grad=True,
            )

        ranges = rnnt.get_rnnt_prune_ranges(
            px_grad=px_grad, py_grad=py_grad, boundary=boundary, s_range=prune_range
        )
        am_pruned, lm_pruned = rnnt.do_rnnt_pruning(
            am=self.joiner.encoder_proj(encoder_out),
            lm=self.joiner.decoder_proj(decoder_out),
            ranges=ranges,
        )  # each (N, T', prune_range, joiner_dim)
        logits = self.joiner(am_pruned, lm_pruned, project_input=False)

        with torch.autocast(device_type=device.type, enabled=False):
            pruned_loss = rnnt.rnnt_loss_pruned(
                logits=logits.float(),
                symbols=y_padded,
                ranges=ranges,
                termination_symbol=blank_id,
                boundary=boundary,
                reduction="sum",
            )
        return simple_loss, pruned_loss

    def forward(
        self,
        x: torch.Tensor,
        x_lens: torch.Tensor,
        y: List[List[int]],
        prune_range: int = 5,
        am_scale: float = 0.0,
        lm_scale: float = 0.0,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Args:
          x: (N, T, feature_dim) features.
          x_lens: (N,) valid frames per utterance.
          y: N token-id lists (no blank, no sos/eos).
          prune_range, am_scale, lm_scale: see :meth:`forward_transducer`.
        Returns:
          (simple_loss, pruned_loss, ctc_loss), each summed over the batch; losses of a disabled
          branch are a zero scalar.
        """
        if x.ndim != 3:
            raise ValueError(f"AsrModel: expected x of shape (N, T, C), got {tuple(x.shape)}")
        if x_lens.ndim != 1 or x_lens.size(0) != x.size(0) or len(y) != x.size(0):
            raise ValueError(
                f"AsrModel: batch sizes differ: x {x.size(0)}, x_lens {tuple(x_lens.shape)}, "
                f"y {len(y)}"
            )

        encoder_out, encoder_out_lens = self.forward_encoder(x, x_lens)

        device = x.device
        y_lens = torch.tensor([len(seq) for seq in y], dtype=torch.int64, device=device)
        max_len = max(int(y_lens.max().item()) if len(y) > 0 else 0, 1)
        y_padded = torch.zeros((len(y), max_len), dtype=torch.int64, device=device)
        for i, seq in enumerate(y):
            if len(seq) > 0:
                y_padded[i, : len(seq)] = torch.tensor(seq, dtype=torch.int64)

        zero = encoder_out.new_zeros(())
        if self.use_transducer:
            simple_loss, pruned_loss = self.forward_transducer(
                encoder_out=encoder_out,
                encoder_out_lens=encoder_out_lens,
                y_padded=y_padded,
                y_lens=y_lens,
                prune_range=prune_range,
                am_scale=am_scale,
                lm_scale=lm_scale,
            )
        else:
            simple_loss, pruned_loss = zero, zero

        if self.use_ctc:
            targets = torch.tensor([t for seq in y for t in seq], dtype=torch.int64)
            ctc_loss = self.forward_ctc(encoder_out, encoder_out_lens, targets, y_lens)
        else:
            ctc_loss = zero
        return simple_loss, pruned_loss, ctc_loss


def transducer_loss_scales(
    batch_idx_train: int, warm_step: int, simple_loss_scale: float
) -> Tuple[float, float]:
    """Weights of (simple_loss, pruned_loss) at a given training step.

    During the first ``warm_step`` optimizer steps the pruned loss is unreliable (its pruning
    bounds come from a simple loss that has not learnt anything yet), so training starts on the
    simple loss alone-ish and linearly hands over: simple goes 1.0 -> ``simple_loss_scale``,
    pruned goes 0.1 -> 1.0.
    """
    if warm_step <= 0 or batch_idx_train >= warm_step:
        return simple_loss_scale, 1.0
    progress = batch_idx_train / warm_step
    return 1.0 - progress * (1.0 - simple_loss_scale), 0.1 + 0.9 * progress


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag :func:`build_model` and the transducer losses read (training).

    That is :func:`add_zipformer_model_arguments` (the architecture) plus
    :func:`add_transducer_loss_arguments` (the loss weights), so a training script calls this
    once (and not ``add_zipformer_arguments`` as well).
    """
    add_zipformer_model_arguments(parser)
    add_transducer_loss_arguments(parser)


def add_zipformer_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The Zipformer transducer's architecture flags: the encoder's
    (``add_zipformer_arguments``: ``--model-size``, ``--encoder-dim``, ...), the decoder/joiner
    flags and the heads (:func:`add_transducer_head_arguments`).

    What decoding and export read from a checkpoint; the loss weights are left out, as
    decoding has an ``--lm-scale`` of its own (language-model fusion).
    """
    add_zipformer_arguments(parser)
    group = parser.add_argument_group("transducer model")
    group.add_argument(
        "--decoder-dim", type=int, default=512, help="Embedding dimension of the decoder."
    )
    group.add_argument(
        "--joiner-dim",
        type=int,
        default=512,
        help="Hidden dimension of the joiner (encoder and decoder outputs are projected to it).",
    )
    group.add_argument(
        "--context-size",
        type=int,
        default=2,
        help="Number of previous tokens the stateless decoder sees; 1 means bigram.",
    )
    add_transducer_head_arguments(parser)


def add_transducer_head_arguments(parser: argparse.ArgumentParser) -> None:
    """``--use-transducer`` and ``--use-ctc``: which heads a transducer family's model has
    (architecture, so stored in and taken from checkpoints)."""
    group = parser.add_argument_group("transducer heads")
    group.add_argument(
        "--use-transducer",
        type=str2bool,
        default=True,
        help="Train the pruned RNN-T (transducer) head.",
    )
    group.add_argument(
        "--use-ctc",
        type=str2bool,
        default=False,
        help="Train a CTC head on the encoder output (hybrid when --use-transducer is also set).",
    )


def add_transducer_loss_arguments(parser: argparse.ArgumentParser) -> None:
    """The loss weights every transducer family shares (``--prune-range``,
    ``--simple-loss-scale``, ``--warm-step``, ...): what
    :func:`icefall_lite.training.loss.compute_loss` reads; training only."""
    group = parser.add_argument_group("transducer loss")
    group.add_argument(
        "--prune-range",
        type=int,
        default=5,
        help="Number of symbols per frame the pruned RNN-T loss evaluates the joiner on.",
    )
    group.add_argument(
        "--lm-scale",
        type=float,
        default=0.25,
        help="Weight of the lm-only term in the smoothed simple loss (used to find the pruning "
        "bounds).",
    )
    group.add_argument(
        "--am-scale",
        type=float,
        default=0.0,
        help="Weight of the am-only term in the smoothed simple loss.",
    )
    group.add_argument(
        "--simple-loss-scale",
        type=float,
        default=0.5,
        help="Final weight of the simple loss: loss = simple_loss_scale * simple_loss + "
        "pruned_loss (reached after --warm-step steps).",
    )
    group.add_argument(
        "--ctc-loss-scale",
        type=float,
        default=0.2,
        help="Weight of the CTC loss when --use-ctc is set.",
    )
    group.add_argument(
        "--warm-step",
        type=int,
        default=2000,
        help="Optimizer steps over which the simple/pruned loss weights are warmed up.",
    )


def check_model_arguments(params: AttributeDict) -> None:
    """Raise ``ValueError`` with a one-line message naming the bad flag.

    Also resolves and checks the encoder flags (unset per-stack flags are filled in from
    ``--model-size`` in ``params``; mismatched per-stack lists are rejected).
    """
    resolve_zipformer_params(params)
    if not (params.use_transducer or params.use_ctc):
        raise ValueError("--use-transducer and --use-ctc are both false: nothing to train")
    for flag, value in (
        ("--decoder-dim", params.decoder_dim),
        ("--joiner-dim", params.joiner_dim),
        ("--context-size", params.context_size),
        ("--prune-range", params.get("prune_range", 5)),
    ):
        if value <= 0:
            raise ValueError(f"{flag} must be positive, got {value}")
    if params.context_size > 1 and params.decoder_dim % 4 != 0:
        raise ValueError(
            f"--decoder-dim must be a multiple of 4 when --context-size > 1, "
            f"got {params.decoder_dim}"
        )
    if params.use_transducer and params.get("prune_range", 5) < 2:
        raise ValueError(f"--prune-range must be at least 2, got {params.prune_range}")
    # The loss weights are absent when decoding (add_zipformer_model_arguments).
    for flag, key in (
        ("--lm-scale", "lm_scale"),
        ("--am-scale", "am_scale"),
        ("--simple-loss-scale", "simple_loss_scale"),
        ("--ctc-loss-scale", "ctc_loss_scale"),
        ("--warm-step", "warm_step"),
    ):
        value = params.get(key, 0)
        if value < 0:
            raise ValueError(f"{flag} must be non-negative, got {value}")


def build_model(params: AttributeDict) -> AsrModel:
    """Build the Zipformer transducer/CTC model described by ``params``.

    ``params`` holds the flags of :func:`add_model_arguments` (the encoder's included; unset
    encoder flags are filled in from ``--model-size``), ``vocab_size`` and ``blank_id``.
    """
    check_model_arguments(params)
    encoder_embed, encoder = build_zipformer(params)
    encoder_dim = encoder.output_dim

    decoder = joiner = None
    if params.use_transducer:
        decoder = Decoder(
            vocab_size=params.vocab_size,
            decoder_dim=params.decoder_dim,
            blank_id=params.blank_id,
            context_size=params.context_size,
        )
        joiner = Joiner(
            encoder_dim=encoder_dim,
            decoder_dim=params.decoder_dim,
            joiner_dim=params.joiner_dim,
            vocab_size=params.vocab_size,
        )
    return AsrModel(
        encoder_embed=encoder_embed,
        encoder=encoder,
        decoder=decoder,
        joiner=joiner,
        encoder_dim=encoder_dim,
        decoder_dim=params.decoder_dim,
        vocab_size=params.vocab_size,
        use_transducer=params.use_transducer,
        use_ctc=params.use_ctc,
    )
