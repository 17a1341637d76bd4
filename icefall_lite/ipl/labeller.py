"""Making pseudo-labels: which cuts a pass relabels, the model that labels (the current one or
an average of the best checkpoints), and the labelling itself through the model interface and
:mod:`icefall_lite.search`.
"""

import contextlib
import copy
import itertools
import logging
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Union,
)

import torch
from lhotse.cut import Cut
from lhotse.utils import LOG_EPSILON
from torch import nn

from icefall_lite.checkpoint import average_checkpoints
from icefall_lite.ipl.cache import PseudoLabel
from icefall_lite.models.interface import has_ctc_head, has_transducer
from icefall_lite.search.decoding import search

__all__ = [
    "IPL_DECODING_METHODS",
    "LabelOutcome",
    "averaged_labeller",
    "best_epochs",
    "confidence_of",
    "label_cuts",
    "resolve_decoding_method",
    "select_for_relabel",
]

PathLike = Union[str, Path]

IPL_DECODING_METHODS = ("auto", "ctc_greedy_search", "greedy_search", "modified_beam_search")


def resolve_decoding_method(method: str, use_transducer: bool, use_ctc: bool) -> str:
    """``--ipl-decoding-method`` for a model with these heads (``auto``: transducer greedy
    search, or CTC greedy search for a CTC-only model).

    Raises:
      ValueError naming the flag when the model lacks the head the method needs.
    """
    if method not in IPL_DECODING_METHODS:
        raise ValueError(
            f"--ipl-decoding-method {method}: expected one of {', '.join(IPL_DECODING_METHODS)}"
        )
    if method == "auto":
        return "greedy_search" if use_transducer else "ctc_greedy_search"
    if method == "ctc_greedy_search" and not use_ctc:
        raise ValueError(
            "--ipl-decoding-method ctc_greedy_search needs a CTC head: train with --use-ctc 1 "
            "or label with greedy_search"
        )
    if method != "ctc_greedy_search" and not use_transducer:
        raise ValueError(
            f"--ipl-decoding-method {method} needs a transducer: the model has only a CTC head "
            "(--use-transducer 0); use ctc_greedy_search"
        )
    return method


def select_for_relabel(
    cut_ids: Sequence[str], fraction: float, seed: int, generation: int
) -> List[str]:
    """The cuts the labelling pass making generation ``generation + 1`` relabels.

    The first pass (``generation`` 0) labels every cut; later passes relabel
    ``round(fraction * len(cut_ids))`` cuts drawn without replacement, so each cut is refreshed
    with probability ``fraction`` per pass. The draw depends only on (seed, generation, the
    ids): a resumed run relabels exactly the cuts the unbroken run would have.

    Returns:
      The chosen ids, sorted.
    """
    ids = sorted(cut_ids)
    if generation == 0:
        return ids
    count = int(round(fraction * len(ids)))
    rng = random.Random(f"ipl:{seed}:{generation}")
    return sorted(rng.sample(ids, count))


def best_epochs(valid_losses: Mapping[int, float], exp_dir: PathLike, num: int) -> List[Path]:
    """The ``epoch-K.pt`` files of the ``num`` lowest validation losses (fewer if fewer exist),
    lowest first; ties go to the later epoch."""
    exp_dir = Path(exp_dir)
    ranked = sorted(
        (
            (float(loss), -int(epoch))
            for epoch, loss in valid_losses.items()
            if math.isfinite(float(loss)) and (exp_dir / f"epoch-{int(epoch)}.pt").is_file()
        )
    )
    return [exp_dir / f"epoch-{-negative}.pt" for _, negative in ranked[:num]]


def averaged_labeller(
    model: nn.Module, files: Sequence[PathLike], device: Union[str, torch.device]
) -> nn.Module:
    """A copy of ``model`` (same architecture) holding the mean of the ``model`` weights in
    ``files``, on ``device``, in eval mode. ``model`` itself is not changed."""
    labeller = copy.deepcopy(model)
    labeller.load_state_dict(average_checkpoints(list(files), device="cpu"))
    return labeller.to(device).eval()


def confidence_of(score: float, num_frames: int) -> float:
    """A search score (log-probability of the best path) as a confidence in (0, 1]: the
    geometric mean of the per-frame probabilities, ``exp(score / num_frames)``."""
    return float(min(1.0, math.exp(score / max(1, num_frames))))


@dataclass
class LabelOutcome:
    """What a labelling pass produced.

    Attributes:
      labels: cut id -> new label, or None when the cut got none this pass (empty, failed,
        below the confidence threshold): its old label is dropped.
      counts: ``labelled``, ``empty``, ``undecodable``, ``low_confidence`` cut counts.
    """

    labels: Dict[str, Optional[PseudoLabel]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)

    def merge(self, other: "LabelOutcome") -> None:
        self.labels.update(other.labels)
        self.counts.update(other.counts)

    def summary(self) -> str:
        keys = ("labelled", "empty", "undecodable", "low_confidence")
        return ", ".join(f"{key} {self.counts.get(key, 0)}" for key in keys)


# Cuts named in warnings per pass (the rest are only counted: a broken set must not flood the log).
_MAX_WARNINGS = 5


def _short(error: BaseException) -> str:
    """The first line of an error, at most 200 characters (lhotse appends the whole cut)."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]


def _features(cut: Cut, extractor: Any) -> torch.Tensor:
    """(T, F) log-mel features of a cut: stored ones, or computed from its audio."""
    if cut.has_features:
        return torch.from_numpy(cut.load_features())
    return torch.from_numpy(cut.compute_features(extractor))


# Cuts read ahead and sorted by duration before batching: batches of similar lengths waste
# little on padding, and only this many cuts are held at once (tarred audio is in memory).
_SORT_WINDOW = 1000


def _batches(cuts: Iterable[Cut], batch_duration: float) -> Iterator[List[Cut]]:
    """Batches of at most ``batch_duration`` seconds (a longer cut alone), of similar
    durations within each window of ``_SORT_WINDOW`` cuts."""
    iterator = iter(cuts)
    while True:
        window = sorted(itertools.islice(iterator, _SORT_WINDOW), key=lambda cut: cut.duration)
        if not window:
            return
        batch: List[Cut] = []
        seconds = 0.0
        for cut in window:
            if batch and seconds + cut.duration > batch_duration:
                yield batch
                batch, seconds = [], 0.0
            batch.append(cut)
            seconds += cut.duration
        if batch:
            yield batch


@torch.no_grad()
def _decode(
    model: nn.Module,
    features: List[torch.Tensor],
    search_params: Mapping[str, Any],
    autocast: Callable[[], Any],
) -> List[Any]:
    """(T_i, F) features -> one (DecodingResult, encoder frames) per utterance."""
    device = next(model.parameters()).device
    x_lens = torch.tensor([f.size(0) for f in features], dtype=torch.int64, device=device)
    x = torch.nn.utils.rnn.pad_sequence(features, batch_first=True, padding_value=LOG_EPSILON)
    with autocast():
        encoder_out, encoder_out_lens = model.forward_encoder(x.to(device), x_lens)
    results = search(search_params, model, encoder_out.float(), encoder_out_lens)
    return list(zip(results, encoder_out_lens.tolist()))


@torch.no_grad()
def label_cuts(
    model: nn.Module,
    cuts: Iterable[Cut],
    sp: Any,
    decoding_method: str,
    generation: int,
    batch_duration: float,
    min_confidence: float = 0.0,
    beam_size: int = 4,
    autocast: Optional[Callable[[], Any]] = None,
) -> LabelOutcome:
    """Label ``cuts`` with ``model`` (eval mode; the caller puts it back into training).

    Batches of up to ``batch_duration`` seconds go through ``forward_encoder`` and the search.
    A cut whose features cannot be read, or that is too short for the encoder, or whose batch
    fails (then each of its cuts is retried alone), counts as ``undecodable``; an empty
    transcript as ``empty``; a confidence (:func:`confidence_of`) below ``min_confidence`` as
    ``low_confidence``. Each of these gets the label None.

    Args:
      model: follows :mod:`icefall_lite.models.interface`; on the device to label on.
      cuts: the cuts to label (any order).
      sp: tokenizer with ``decode(List[int]) -> str``.
      decoding_method: ``ctc_greedy_search``, ``greedy_search`` or ``modified_beam_search``.
      generation: written into each label.
      autocast: a context factory for the encoder (mixed precision), or None.
    """
    if decoding_method == "ctc_greedy_search" and not has_ctc_head(model):
        raise ValueError("ctc_greedy_search: the model has no CTC head")
    if decoding_method != "ctc_greedy_search" and not has_transducer(model):
        raise ValueError(f"{decoding_method}: the model has no transducer")
    autocast = autocast or contextlib.nullcontext
    # search() reads the keys of every method it knows; only these three methods reach it.
    params = {
        "decoding_method": decoding_method,
        "max_sym_per_frame": 1,
        "beam_size": beam_size,
        "beam": 20.0,
        "max_states": 64,
        "max_contexts": 8,
    }
    was_training = model.training
    model.eval()
    outcome = LabelOutcome()
    extractor = None
    try:
        for batch in _batches(cuts, batch_duration):
            ready, features = [], []
            for cut in batch:
                try:
                    if not cut.has_features and extractor is None:
                        from icefall_lite.data.features import make_fbank_extractor

                        extractor = make_fbank_extractor("lhotse")
                    feats = _features(cut, extractor).float()
                    if int(model.output_frames(feats.size(0))) < 1:
                        raise ValueError(f"{feats.size(0)} frames: too short for the encoder")
                except Exception as error:  # unreadable audio/features, too short
                    if outcome.counts["undecodable"] < _MAX_WARNINGS:
                        logging.warning(f"IPL: cannot label cut {cut.id}: {_short(error)}")
                    outcome.labels[cut.id] = None
                    outcome.counts["undecodable"] += 1
                    continue
                ready.append(cut)
                features.append(feats)
            if not ready:
                continue
            try:
                decoded = _decode(model, features, params, autocast)
            except Exception as error:  # retry alone: find the cut that breaks the batch
                logging.warning(f"IPL: a batch failed ({_short(error)}); retrying its cuts alone")
                decoded = []
                for cut, feats in zip(ready, features):
                    try:
                        decoded.extend(_decode(model, [feats], params, autocast))
                    except Exception as single_error:
                        if outcome.counts["undecodable"] < _MAX_WARNINGS:
                            message = _short(single_error)
                            logging.warning(f"IPL: cannot label cut {cut.id}: {message}")
                        outcome.counts["undecodable"] += 1
                        decoded.append(None)
            for cut, item in zip(ready, decoded):
                if item is None:  # counted above
                    outcome.labels[cut.id] = None
                    continue
                result, num_frames = item
                text = " ".join(sp.decode(result.tokens).split()) if result.tokens else ""
                confidence = confidence_of(result.score, num_frames)
                if not text:
                    outcome.labels[cut.id] = None
                    outcome.counts["empty"] += 1
                elif confidence < min_confidence:
                    outcome.labels[cut.id] = None
                    outcome.counts["low_confidence"] += 1
                else:
                    outcome.labels[cut.id] = PseudoLabel(text, confidence, generation)
                    outcome.counts["labelled"] += 1
    finally:
        if was_training:
            model.train()
    return outcome
