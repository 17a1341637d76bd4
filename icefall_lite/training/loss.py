"""Loss of one batch (with the simple/pruned warm-up) and the validation loss.

The model is reached only through its ``forward`` (see :mod:`icefall_lite.models.interface`):
it returns the summed ``(simple_loss, pruned_loss, ctc_loss)``, which are weighted here.
"""

import contextlib
import logging
import math
from typing import Any, Dict, Iterable, List, Tuple

import torch
import torch.nn as nn

from icefall_lite.models import transducer_loss_scales
from icefall_lite.training.state import preserved_rng_state, unwrap
from icefall_lite.utils import AttributeDict, MetricsTracker

__all__ = ["autocast", "batch_cut_ids", "compute_loss", "compute_validation_loss"]


def autocast(params: AttributeDict, device: torch.device):
    """The mixed-precision context ``--use-fp16`` / ``--use-bf16`` ask for (or none)."""
    if params.use_fp16:
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    if params.use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_cut_ids(batch: Dict[str, Any]) -> List[str]:
    """The ids of a batch's cuts (empty when the batch carries none), for warnings."""
    cuts = batch.get("supervisions", {}).get("cut")
    return [cut.id for cut in cuts] if cuts is not None else []


def compute_loss(
    params: AttributeDict,
    model: nn.Module,
    sp: Any,
    batch: Dict[str, Any],
    is_training: bool,
) -> Tuple[torch.Tensor, MetricsTracker]:
    """Loss of one K2SpeechRecognitionDataset batch.

    Args:
      params: needs batch_idx_train, use_fp16/use_bf16; for a transducer prune_range,
        am_scale, lm_scale, simple_loss_scale, warm_step; ctc_loss_scale (1 if absent).
      model: any model of :mod:`icefall_lite.models.interface` (possibly DDP-wrapped); its
        ``use_transducer`` / ``use_ctc`` say which losses count.
      sp: SentencePiece processor mapping texts to token ids.
      batch: ``inputs`` (N, T, 80) fbank, ``supervisions`` with ``text`` and ``num_frames``.
      is_training: build the autograd graph.
    Returns:
      loss (scalar, summed over the batch) and a MetricsTracker with ``frames`` (encoder
      frames), ``utterances``, ``loss``, ``simple_loss``, ``pruned_loss``, ``ctc_loss`` (sums).
    """
    device = next(model.parameters()).device
    features = batch["inputs"].to(device)
    if features.ndim != 3:
        raise ValueError(f"compute_loss: expected inputs (N, T, C), got {tuple(features.shape)}")
    supervisions = batch["supervisions"]
    feature_lens = supervisions["num_frames"].to(device)
    texts = supervisions["text"]
    token_ids = sp.encode(texts, out_type=int)

    # Which heads to weigh is the model's (the interface's use_transducer / use_ctc): a
    # CTC-only family has no transducer flags at all.
    bare = unwrap(model)
    use_transducer, use_ctc = bool(bare.use_transducer), bool(bare.use_ctc)
    with torch.set_grad_enabled(is_training), autocast(params, device):
        simple_loss, pruned_loss, ctc_loss = model(
            x=features,
            x_lens=feature_lens,
            y=token_ids,
            prune_range=params.get("prune_range", 5),
            am_scale=params.get("am_scale", 0.0),
            lm_scale=params.get("lm_scale", 0.0),
        )
        loss = features.new_zeros((), dtype=torch.float32)
        if use_transducer:
            simple_scale, pruned_scale = transducer_loss_scales(
                params.batch_idx_train, params.warm_step, params.simple_loss_scale
            )
            loss = loss + simple_scale * simple_loss + pruned_scale * pruned_loss
        if use_ctc:
            # Beside a transducer the CTC head is weighted; alone it is the whole loss.
            loss = loss + params.get("ctc_loss_scale", 1.0) * ctc_loss

    info = MetricsTracker()
    info["frames"] = int(bare.output_frames(feature_lens).sum().item())
    info["utterances"] = len(texts)
    info["loss"] = loss.detach().cpu().item()
    if use_transducer:
        info["simple_loss"] = simple_loss.detach().cpu().item()
        info["pruned_loss"] = pruned_loss.detach().cpu().item()
    if use_ctc:
        info["ctc_loss"] = ctc_loss.detach().cpu().item()
    return loss, info


def compute_validation_loss(
    params: AttributeDict,
    model: nn.Module,
    sp: Any,
    valid_dl: Iterable,
    world_size: int = 1,
) -> MetricsTracker:
    """Summed losses over the validation set (all ranks' shares when world_size > 1).

    Runs in eval mode with the RNG streams preserved, so validating does not change what the
    training run does next. Sets ``params.valid_loss`` and the ``best_valid_*`` counters.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    tot_loss = MetricsTracker()
    with preserved_rng_state():
        for batch in valid_dl:
            _, info = compute_loss(params, model, sp, batch, is_training=False)
            if math.isfinite(info["loss"]):
                tot_loss = tot_loss + info
            else:
                logging.warning(f"Validation: non-finite loss on cuts {batch_cut_ids(batch)}")
    if world_size > 1:
        tot_loss.reduce(device)
    if was_training:
        model.train()
    frames = tot_loss["frames"]
    loss_value = tot_loss["loss"] / frames if frames > 0 else float("inf")
    params.valid_loss = loss_value
    if loss_value < params.best_valid_loss:
        params.best_valid_epoch = params.cur_epoch
        params.best_valid_loss = loss_value
    return tot_loss
