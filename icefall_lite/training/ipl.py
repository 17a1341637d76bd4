"""Iterative pseudo-labelling inside training (the in-place mode of TopIPL).

At the start of every epoch after ``--ipl-n-epochs`` supervised ones (that is, at the end of
the previous epoch, after its validation and ``epoch-N.pt``), the model labels the unlabeled
cuts: all of them the first time, a ``--ipl-p-cache`` fraction later. Every DDP rank labels
its share of the chosen cuts; the labels are gathered on all ranks (each builds its training
loader from them) and rank 0 publishes the new cache generation atomically. The training cuts
of the epoch are the labelled ones plus the pseudo-labelled ones; validation and test sets
never see a pseudo-label.

Exact resume: ``params.ipl_state`` (stored in every training checkpoint) holds the cache
generation and digest the run is training with and the validation loss of every epoch (for
``--ipl-average``). A resumed run finds that generation again (the cache file or its ``.prev``
copy), so the labels, the cuts chosen for relabelling and the batches are those of the
unbroken run; ``--ipl-restore 1`` instead takes the cache file as it is (offline labelling).
"""

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from lhotse import CutSet

from icefall_lite.errors import UsageError
from icefall_lite.ipl import (
    CacheError,
    LabelOutcome,
    PseudoLabelCache,
    averaged_labeller,
    best_epochs,
    cut_ids,
    ipl_cache_path,
    label_cuts,
    load_unlabeled_cuts,
    previous_path,
    resolve_decoding_method,
    select_for_relabel,
    with_pseudo_labels,
)
from icefall_lite.ipl.unlabeled import iterate_shard
from icefall_lite.models.interface import has_ctc_head, has_transducer
from icefall_lite.training.loss import autocast
from icefall_lite.training.state import TrainingState, preserved_rng_state

__all__ = ["InPlaceIpl", "start_ipl"]


def _find_generation(path: Path, wanted: Dict[str, Any]) -> Optional[PseudoLabelCache]:
    """The cache at ``path`` or its previous-generation copy whose state is ``wanted`` (None
    if neither is)."""
    for candidate in (path, previous_path(path)):
        try:
            cache = PseudoLabelCache.read(candidate)
        except (FileNotFoundError, CacheError):
            continue
        if cache.generation == wanted["generation"] and cache.digest() == wanted["digest"]:
            return cache
    return None


class InPlaceIpl:
    """The pseudo-labelling of one rank's training run (see the module docstring).

    Args:
      state: the run (its ``params`` carry the ``--ipl-*`` flags).
      unlabeled: the unlabeled cuts (lazy).
      ids: their ids.
      cache: the cache generation to train with now.
      valid_losses: epoch -> validation loss so far (for ``--ipl-average``).
    """

    def __init__(
        self,
        state: TrainingState,
        unlabeled: CutSet,
        ids: List[str],
        cache: PseudoLabelCache,
        valid_losses: Dict[int, float],
    ) -> None:
        params = state.params
        self.state = state
        self.unlabeled = unlabeled
        self.ids = ids
        self.cache = cache
        self.valid_losses = dict(valid_losses)
        self.path = ipl_cache_path(params)
        # The heads of the model itself: a CTC-only family (conv_ctc) has no --use-* flags.
        model = state.bare_model
        self.method = resolve_decoding_method(
            params.ipl_decoding_method, has_transducer(model), has_ctc_head(model)
        )
        self._publish_state()

    def _publish_state(self) -> None:
        # In params, so that every checkpoint (epoch and mid-epoch) stores it.
        self.state.params.ipl_state = {
            **self.cache.state(),
            "valid_losses": {str(k): float(v) for k, v in self.valid_losses.items()},
        }

    def training_cuts(self, labelled: CutSet) -> CutSet:
        """The labelled cuts followed by the pseudo-labelled ones (lazy)."""
        if len(self.cache) == 0:
            return labelled
        return labelled + with_pseudo_labels(self.unlabeled, self.cache)

    def note_validation(self, epoch: int, valid_loss: float) -> None:
        """Record an epoch's validation loss (call before its ``epoch-N.pt`` is written)."""
        self.valid_losses[int(epoch)] = float(valid_loss)
        self._publish_state()

    def wants_labels(self, epoch: int) -> bool:
        """Whether a labelling pass precedes ``epoch``."""
        params = self.state.params
        if epoch <= params.ipl_n_epochs:
            return False
        return self.cache.generation == 0 or params.ipl_p_cache > 0

    def _labeller(self) -> torch.nn.Module:
        params, state = self.state.params, self.state
        if params.ipl_average > 0:
            files = best_epochs(self.valid_losses, params.exp_dir, params.ipl_average)
            if files:
                logging.info(f"IPL: labelling with the average of {[f.name for f in files]}")
                return averaged_labeller(state.bare_model, files, state.device)
            logging.info("IPL: no epoch checkpoint with a validation loss yet; current weights")
        return state.bare_model

    def label(self, epoch: int) -> LabelOutcome:
        """One labelling pass before ``epoch``: this rank's share of the chosen cuts, gathered
        on every rank; rank 0 writes the new generation. Returns the whole pass's outcome."""
        params, state = self.state.params, self.state
        start = time.time()
        if state.world_size > 1:
            # Rank 0 has just written epoch-N.pt: every rank must see it before choosing the
            # checkpoints to average, or the ranks would label with different models.
            dist.barrier()
        chosen = select_for_relabel(
            self.ids, params.ipl_p_cache, params.seed, self.cache.generation
        )
        mine = chosen[state.rank :: state.world_size]
        logging.info(
            f"IPL: labelling pass {self.cache.generation + 1} before epoch {epoch}: "
            f"{len(chosen)} of {len(self.ids)} unlabeled cuts, {len(mine)} on rank {state.rank}"
        )
        with preserved_rng_state():  # labelling must not move the training RNG streams
            outcome = label_cuts(
                self._labeller(),
                iterate_shard(self.unlabeled, mine),
                state.sp,
                self.method,
                generation=self.cache.generation + 1,
                batch_duration=params.ipl_batch_duration,
                min_confidence=params.ipl_min_confidence,
                beam_size=params.ipl_beam_size,
                autocast=lambda: autocast(params, state.device),
            )
        if state.world_size > 1:
            gathered: List[Any] = [None] * state.world_size
            dist.all_gather_object(gathered, outcome)
            outcome = LabelOutcome()
            for part in gathered:
                outcome.merge(part)
        self.cache = self.cache.updated(outcome.labels)
        if state.rank == 0:
            self.cache.write(self.path)
        if state.world_size > 1:
            dist.barrier()  # the file is complete before any rank goes on
        self._publish_state()
        logging.info(
            f"IPL: pass {self.cache.generation} done in {time.time() - start:.1f} s: "
            f"{outcome.summary()}; the cache has {len(self.cache)} labels"
        )
        if state.tb_writer is not None:
            for key in ("labelled", "empty", "undecodable", "low_confidence"):
                state.tb_writer.add_scalar(
                    f"ipl/{key}", outcome.counts.get(key, 0), params.batch_idx_train
                )
        return outcome


def _restored_cache(
    params: Any, checkpoint: Optional[Dict[str, Any]], path: Path, rank: int
) -> Tuple[PseudoLabelCache, Dict[int, float]]:
    """The cache generation a run starts with, and the validation losses it knows."""
    saved = (checkpoint or {}).get("ipl_state") or {}
    valid_losses = {int(k): float(v) for k, v in saved.get("valid_losses", {}).items()}
    if params.ipl_restore:
        cache = PseudoLabelCache.read(path)
        logging.info(
            f"IPL: --ipl-restore: generation {cache.generation} from {path} "
            f"({len(cache)} labels)"
        )
        return cache, valid_losses
    if not saved or saved.get("generation", 0) == 0:
        if path.is_file():
            logging.info(f"IPL: {path} exists but this run has no labels yet; it is replaced")
        return PseudoLabelCache(), valid_losses
    cache = _find_generation(path, saved)
    if cache is None:
        raise CacheError(
            f"--ipl-cache {path}: the checkpoint trained with pseudo-label generation "
            f"{saved['generation']}, which is neither in {path.name} nor in "
            f"{previous_path(path).name}; pass --ipl-restore 1 to go on with the file as it is"
        )
    if not path.is_file() or PseudoLabelCache.read(path).digest() != cache.digest():
        source = previous_path(path).name
        logging.info(f"IPL: restoring {path} to generation {cache.generation} (from {source})")
        if rank == 0:
            cache.write(path, keep_previous=False)
    logging.info(f"IPL: resuming with generation {cache.generation} ({len(cache)} labels)")
    return cache, valid_losses


def _check_disjoint(ids: List[str], other: CutSet, what: str, source: Any) -> None:
    known = set(ids)
    shared = [cut.id for cut in other if cut.id in known]
    if shared:
        raise UsageError(
            f"--ipl-unlabeled-cuts {source} shares {len(shared)} cut(s) with the {what} (e.g. "
            f"{shared[0]}): pseudo-labels must not replace real transcripts or reach validation"
        )


def start_ipl(
    state: TrainingState,
    checkpoint: Optional[Dict[str, Any]],
    labelled: CutSet,
    valid: CutSet,
) -> Optional[InPlaceIpl]:
    """Set up pseudo-labelling for a run (None without ``--ipl-unlabeled-cuts``).

    Reads the unlabeled ids, refuses an unlabeled set sharing cuts with the labelled training
    or the validation cuts, restores the cache generation (see the module docstring) and checks
    that every cut it names exists.
    """
    params = state.params
    if params.get("ipl_unlabeled_cuts") is None:
        return None
    source = params.ipl_unlabeled_cuts
    unlabeled = load_unlabeled_cuts(source, params.get("ipl_tarred_audio"))
    ids = cut_ids(unlabeled)
    if len(set(ids)) != len(ids):
        raise UsageError(f"--ipl-unlabeled-cuts {source}: cut ids are not unique")
    _check_disjoint(ids, valid, "validation cuts", source)
    _check_disjoint(ids, labelled, "labelled training cuts", source)
    path = ipl_cache_path(params)
    cache, valid_losses = _restored_cache(params, checkpoint, path, state.rank)
    if state.world_size > 1:
        dist.barrier()  # rank 0 may have put the file back; nobody reads it afterwards
    cache.check_cuts_exist(ids, path, source)
    logging.info(f"IPL: {len(ids)} unlabeled cuts in {source}; cache {path}")
    return InPlaceIpl(state, unlabeled, ids, cache, valid_losses)
