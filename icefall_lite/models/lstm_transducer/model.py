"""The LSTM transducer: :class:`~icefall_lite.models.asr_model.AsrModel` with an LSTM encoder,
an LSTM prediction network and the full or pruned RNN-T loss; its flags and builder.

The transducer losses, the CTC head and the joiner are the library's (``AsrModel``, ``Joiner``);
this family adds the encoder, the stateful decoder, per-utterance input normalisation and the
full-lattice loss option.
"""

import argparse
from typing import Tuple

import torch
from torch import Tensor

from icefall_lite import rnnt
from icefall_lite.models.asr_model import (
    AsrModel,
    add_transducer_head_arguments,
    add_transducer_loss_arguments,
)
from icefall_lite.models.joiner import Joiner
from icefall_lite.models.lstm_transducer.decoder import LstmDecoder
from icefall_lite.models.lstm_transducer.encoder import LstmEncoder
from icefall_lite.models.lstm_transducer.normalization import UtteranceNormalization
from icefall_lite.models.lstm_transducer.presets import LSTM_PRESETS
from icefall_lite.models.lstm_transducer.streaming import LstmStreamingEncoder
from icefall_lite.utils import AttributeDict, str2bool

__all__ = [
    "ARCH_KEYS",
    "LstmTransducer",
    "add_lstm_chunk_arguments",
    "add_lstm_transducer_arguments",
    "add_lstm_transducer_model_arguments",
    "build_lstm_transducer_model",
    "check_lstm_transducer_arguments",
    "resolve_lstm_params",
]

FAMILY = "lstm_transducer"
ARCH_KEYS = tuple(LSTM_PRESETS["testing"])
RNNT_LOSSES = ("pruned", "full")


class LstmTransducer(AsrModel):
    """An RNN-T of the Myrtle.ai / MLPerf kind.

    Args:
      encoder: :class:`LstmEncoder`.
      decoder: :class:`LstmDecoder`.
      joiner: :class:`Joiner`.
      vocab_size: tokens, blank included.
      rnnt_loss: ``"pruned"`` (simple + pruned losses, as the Zipformer) or ``"full"`` (the
        RNN-T loss over the whole (T, U) lattice; reported as the pruned loss, the simple one
        is zero).
      use_ctc: add a CTC head on the encoder output.
      normalize_input: per-utterance normalisation in :meth:`forward_encoder` (False: the
        features come normalised, e.g. by streaming normalisation).
    """

    def __init__(
        self,
        encoder: LstmEncoder,
        decoder: LstmDecoder,
        joiner: Joiner,
        vocab_size: int,
        rnnt_loss: str = "pruned",
        use_ctc: bool = False,
        normalize_input: bool = True,
    ) -> None:
        if rnnt_loss not in RNNT_LOSSES:
            raise ValueError(f"--rnnt-loss {rnnt_loss!r}: expected one of {RNNT_LOSSES}")
        super().__init__(
            encoder_embed=UtteranceNormalization(enabled=normalize_input),
            encoder=encoder,
            decoder=decoder,
            joiner=joiner,
            encoder_dim=encoder.output_dim,
            decoder_dim=decoder.decoder_dim,
            vocab_size=vocab_size,
            use_transducer=True,
            use_ctc=use_ctc,
        )
        self.rnnt_loss = rnnt_loss
        # What the decoding drivers must reproduce outside the model when they normalise the
        # features themselves (streaming normalisation): see forward_encoder(normalize=False).
        self.input_normalization = "utterance" if normalize_input else "none"
        # Causal by construction: one model decodes offline and chunk by chunk.
        self.causal = True
        if rnnt_loss == "full":
            # The full loss needs no pruning bounds, so no simple-loss heads either.
            self.simple_am_proj = None
            self.simple_lm_proj = None

    def forward_encoder(
        self, x: Tensor, x_lens: Tensor, normalize: bool = True
    ) -> Tuple[Tensor, Tensor]:
        """(N, T, F) features, (N,) lengths -> (N, T', C) encoder output, (N,) lengths.

        ``normalize=False``: the features are normalised already (streaming normalisation)."""
        if normalize:
            x = self.encoder_embed(x, x_lens)
        encoder_out, encoder_out_lens, _ = self.encoder(x, x_lens)
        return encoder_out, encoder_out_lens

    def output_frames(self, num_frames):
        """Encoder frames for ``num_frames`` input frames (int or (N,) tensor)."""
        return self.encoder.output_frames(num_frames)

    def streaming_encoder(self, chunk_size: int = 8, left_context_frames: int = 0):
        """The chunk-wise encoder (:class:`LstmStreamingEncoder`); ``chunk_size`` in encoder
        frames (<= 0: 8). ``left_context_frames`` is unused: the LSTM state is the context."""
        return LstmStreamingEncoder(self.encoder, chunk_size if chunk_size > 0 else 8)

    def forward_transducer(
        self,
        encoder_out: Tensor,
        encoder_out_lens: Tensor,
        y_padded: Tensor,
        y_lens: Tensor,
        prune_range: int = 5,
        am_scale: float = 0.0,
        lm_scale: float = 0.0,
    ) -> Tuple[Tensor, Tensor]:
        """As :meth:`AsrModel.forward_transducer`; with ``rnnt_loss="full"`` the joiner is run
        on every (t, u) pair, (N, T', U + 1, V) logits, and the loss is ``(0, full loss)``."""
        if self.rnnt_loss == "pruned":
            return super().forward_transducer(
                encoder_out, encoder_out_lens, y_padded, y_lens, prune_range, am_scale, lm_scale
            )
        blank_id = self.decoder.blank_id
        batch_size = y_padded.size(0)
        device = encoder_out.device
        sos = torch.full((batch_size, 1), blank_id, dtype=torch.int64, device=device)
        decoder_out = self.decoder(torch.cat([sos, y_padded], dim=1))  # (N, U + 1, D)
        logits = self.joiner(encoder_out.unsqueeze(2), decoder_out.unsqueeze(1))
        boundary = torch.zeros((batch_size, 4), dtype=torch.int64, device=device)
        boundary[:, 2] = y_lens
        boundary[:, 3] = encoder_out_lens
        with torch.autocast(device_type=device.type, enabled=False):
            loss = rnnt.rnnt_loss(
                logits=logits.float(),
                symbols=y_padded,
                termination_symbol=blank_id,
                boundary=boundary,
                reduction="sum",
            )
        return encoder_out.new_zeros(()), loss


def add_lstm_transducer_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag :func:`build_lstm_transducer_model` and the transducer losses read
    (training): the architecture's and the loss weights."""
    add_lstm_transducer_model_arguments(parser)
    add_transducer_loss_arguments(parser)


def add_lstm_transducer_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The architecture flags (and heads) of :func:`build_lstm_transducer_model`: what
    decoding and export read from a checkpoint, without the training-loss weights."""
    group = parser.add_argument_group("LSTM transducer")
    group.add_argument(
        "--lstm-preset",
        type=str,
        default="cpu",
        choices=sorted(LSTM_PRESETS),
        help="Size preset for the architecture flags below that are not given: testing (49M "
        "with 1023 BPE pieces), base (85M with 8703), cpu (2.5M with 127; the synth corpus).",
    )
    for key, help_text in (
        ("encoder_hidden_dim", "LSTM hidden size of the encoder (its output dimension)."),
        ("num_pre_layers", "Encoder LSTM layers before the time-reduction layer."),
        ("num_post_layers", "Encoder LSTM layers after the time-reduction layer."),
        ("frame_stacking", "Fbank frames stacked into one encoder input frame (subsampling)."),
        ("time_reduction", "Frames the time-reduction layer stacks into one (subsampling)."),
        ("pred_net_dim", "Embedding and LSTM size of the prediction network."),
        ("num_pred_layers", "LSTM layers of the prediction network."),
        ("joint_dim", "Hidden size of the joint network."),
    ):
        group.add_argument(
            "--" + key.replace("_", "-"),
            type=int,
            default=None,
            help=f"{help_text} Default: from --lstm-preset "
            f"(testing: {LSTM_PRESETS['testing'][key]}).",
        )
    group.add_argument(
        "--lstm-dropout", type=float, default=0.1, help="Dropout between LSTM layers."
    )
    group.add_argument(
        "--rnnt-loss",
        type=str,
        default="pruned",
        choices=RNNT_LOSSES,
        help="pruned: simple + pruned RNN-T losses (cheap); full: the RNN-T loss over the "
        "whole lattice (the reference's; memory N x T' x U x V).",
    )
    group.add_argument(
        "--normalize-input",
        type=str2bool,
        default=True,
        help="Normalise each mel bin per utterance inside the model (training and offline "
        "decoding); streaming decoding normalises outside it.",
    )
    add_transducer_head_arguments(parser)


def add_lstm_chunk_arguments(parser: argparse.ArgumentParser, chunk_size: int = -1) -> None:
    """``--chunk-size`` of the decoding and export scripts, in encoder frames (60 ms with the
    default stacking and reduction); not an architecture flag: any chunk size decodes any
    model."""
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=chunk_size,
        help="Encoder frames per chunk for chunk-wise decoding and the streaming exports; "
        "decode.py: > 0 decodes whole utterances padded exactly as chunk-wise decoding pads "
        "them (simulated streaming), -1 as they are.",
    )


def resolve_lstm_params(params: AttributeDict) -> AttributeDict:
    """Fill unset architecture keys from ``--lstm-preset`` (in place) and return ``params``."""
    preset = params.get("lstm_preset", "cpu")
    if preset not in LSTM_PRESETS:
        raise ValueError(f"--lstm-preset {preset!r}: expected one of {sorted(LSTM_PRESETS)}")
    for key in ARCH_KEYS:
        if params.get(key) is None:
            params[key] = LSTM_PRESETS[preset][key]
    return params


def check_lstm_transducer_arguments(params: AttributeDict) -> None:
    """A one-line ``ValueError`` naming the bad flag."""
    resolve_lstm_params(params)
    for key in ARCH_KEYS:
        if params[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {params[key]}")
    if not 0.0 <= params.get("lstm_dropout", 0.1) < 1.0:
        raise ValueError(f"--lstm-dropout must be in [0, 1), got {params.lstm_dropout}")
    if params.get("rnnt_loss", "pruned") not in RNNT_LOSSES:
        raise ValueError(f"--rnnt-loss {params.rnnt_loss!r}: expected one of {RNNT_LOSSES}")
    if params.get("rnnt_loss", "pruned") == "pruned" and params.get("prune_range", 5) < 2:
        raise ValueError(f"--prune-range must be at least 2, got {params.prune_range}")


def build_lstm_transducer_model(params: AttributeDict) -> LstmTransducer:
    """The LSTM transducer ``params`` describe (the flags of
    :func:`add_lstm_transducer_arguments`, ``vocab_size``, ``blank_id``, ``feature_dim``)."""
    check_lstm_transducer_arguments(params)
    params.model_family = FAMILY
    dropout = params.get("lstm_dropout", 0.1)
    encoder = LstmEncoder(
        feature_dim=params.get("feature_dim", 80),
        hidden_dim=params.encoder_hidden_dim,
        num_pre_layers=params.num_pre_layers,
        num_post_layers=params.num_post_layers,
        frame_stacking=params.frame_stacking,
        time_reduction=params.time_reduction,
        dropout=dropout,
    )
    decoder = LstmDecoder(
        vocab_size=params.vocab_size,
        decoder_dim=params.pred_net_dim,
        blank_id=params.blank_id,
        num_layers=params.num_pred_layers,
        dropout=dropout,
    )
    joiner = Joiner(
        encoder_dim=encoder.output_dim,
        decoder_dim=params.pred_net_dim,
        joiner_dim=params.joint_dim,
        vocab_size=params.vocab_size,
    )
    return LstmTransducer(
        encoder=encoder,
        decoder=decoder,
        joiner=joiner,
        vocab_size=params.vocab_size,
        rnnt_loss=params.get("rnnt_loss", "pruned"),
        use_ctc=params.get("use_ctc", False),
        normalize_input=params.get("normalize_input", True),
    )
