"""Size presets of the LSTM transducer and their parameter counts.

``testing`` and ``base`` follow the two model sizes of Myrtle.ai's RNN-T training scripts
(49 M parameters with a 1023-piece sentencepiece model, 85 M with 8703 pieces; a vocabulary
here counts blank too, so 1024 and 8704); ``cpu`` is sized for the synth corpus on a 2-core
CPU. :func:`count_parameters` gives the count analytically (no model is built), and a test
checks it against a model built on the meta device.
"""

from typing import Any, Dict

__all__ = ["LSTM_PRESETS", "count_parameters"]

# Architecture keys (the flag dest names of add_lstm_transducer_arguments).
LSTM_PRESETS: Dict[str, Dict[str, Any]] = {
    "testing": dict(
        encoder_hidden_dim=1024,
        num_pre_layers=2,
        num_post_layers=3,
        frame_stacking=3,
        time_reduction=2,
        pred_net_dim=512,
        num_pred_layers=2,
        joint_dim=512,
    ),
    # Myrtle's base config file was not at hand: wider encoder, prediction and joint networks
    # than ``testing``, sized to its published 85 M with an 8704-token vocabulary.
    "base": dict(
        encoder_hidden_dim=1280,
        num_pre_layers=2,
        num_post_layers=3,
        frame_stacking=3,
        time_reduction=2,
        pred_net_dim=640,
        num_pred_layers=2,
        joint_dim=640,
    ),
    # ~3 M parameters: a few steps per second on one core with 30 s batches.
    "cpu": dict(
        encoder_hidden_dim=256,
        num_pre_layers=1,
        num_post_layers=2,
        frame_stacking=3,
        time_reduction=2,
        pred_net_dim=256,
        num_pred_layers=1,
        joint_dim=256,
    ),
}


def _lstm(input_dim: int, hidden: int, layers: int) -> int:
    # torch.nn.LSTM: four gates, input and recurrent weights, two bias vectors per layer.
    first = 4 * (input_dim * hidden + hidden * hidden + 2 * hidden)
    rest = 4 * (2 * hidden * hidden + 2 * hidden)
    return first + (layers - 1) * rest if layers > 0 else 0


def count_parameters(
    arch: Dict[str, Any],
    vocab_size: int,
    feature_dim: int = 80,
    simple_projections: bool = False,
    ctc_head: bool = False,
) -> int:
    """Parameters of an LSTM transducer with the architecture keys ``arch``.

    Args:
      simple_projections: include the pruned loss's two linear heads (am and lm, no bias).
      ctc_head: include a CTC output layer.
    """
    h = arch["encoder_hidden_dim"]
    d = arch["pred_net_dim"]
    j = arch["joint_dim"]
    encoder = _lstm(arch["frame_stacking"] * feature_dim, h, arch["num_pre_layers"])
    encoder += _lstm(arch["time_reduction"] * h, h, arch["num_post_layers"])
    decoder = vocab_size * d + _lstm(d, d, arch["num_pred_layers"])
    joiner = (h * j + j) + (d * j + j) + (j * vocab_size + vocab_size)
    total = encoder + decoder + joiner
    if simple_projections:
        total += (h + 1) * vocab_size + (d + 1) * vocab_size
    if ctc_head:
        total += h * vocab_size + vocab_size
    return total
