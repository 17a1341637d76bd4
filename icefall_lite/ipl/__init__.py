"""Iterative pseudo-labelling (TopIPL) on unlabeled audio.

* :mod:`~icefall_lite.ipl.cache`: the pseudo-label cache (cut id -> text, confidence,
  generation), one JSON-lines file written atomically, the previous generation kept beside it;
* :mod:`~icefall_lite.ipl.unlabeled`: reading the unlabeled set (Lhotse cuts, NeMo JSON
  manifests, NeMo tarred shards) and attaching labels to its cuts for training;
* :mod:`~icefall_lite.ipl.labeller`: which cuts a pass relabels (``--ipl-p-cache``), the
  labelling model (current weights or the average of the best checkpoints by validation loss,
  ``--ipl-average``), labelling with CTC greedy, transducer greedy or modified beam search
  through the model interface, and the confidence filter;
* :mod:`~icefall_lite.ipl.flags`: the ``--ipl-*`` flags.

The in-place mode (labelling at epoch boundaries inside training, every DDP rank labelling its
shard) is :mod:`icefall_lite.training.ipl`; the offline mode is a recipe's ``ipl_label.py``
(:func:`icefall_lite.ipl.offline.label_offline`) and training with ``--ipl-restore 1``.
"""

from icefall_lite.ipl.cache import CacheError, PseudoLabel, PseudoLabelCache, previous_path
from icefall_lite.ipl.flags import (
    add_ipl_arguments,
    add_labelling_arguments,
    check_ipl_arguments,
    ipl_cache_path,
)
from icefall_lite.ipl.labeller import (
    IPL_DECODING_METHODS,
    LabelOutcome,
    averaged_labeller,
    best_epochs,
    confidence_of,
    label_cuts,
    resolve_decoding_method,
    select_for_relabel,
)
from icefall_lite.ipl.unlabeled import cut_ids, load_unlabeled_cuts, with_pseudo_labels

__all__ = [
    "CacheError",
    "IPL_DECODING_METHODS",
    "LabelOutcome",
    "PseudoLabel",
    "PseudoLabelCache",
    "add_ipl_arguments",
    "add_labelling_arguments",
    "averaged_labeller",
    "best_epochs",
    "check_ipl_arguments",
    "confidence_of",
    "cut_ids",
    "ipl_cache_path",
    "label_cuts",
    "load_unlabeled_cuts",
    "previous_path",
    "resolve_decoding_method",
    "select_for_relabel",
    "with_pseudo_labels",
]
