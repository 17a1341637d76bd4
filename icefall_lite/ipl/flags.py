"""The ``--ipl-*`` flags every recipe's ``train.py`` has (through
:func:`icefall_lite.training.add_training_arguments`) and their checks."""

import argparse
from pathlib import Path
from typing import Any, Mapping

from icefall_lite.ipl.labeller import IPL_DECODING_METHODS, resolve_decoding_method
from icefall_lite.utils import str2bool

__all__ = ["add_ipl_arguments", "add_labelling_arguments", "check_ipl_arguments", "ipl_cache_path"]


def add_labelling_arguments(group: Any) -> None:
    """The flags of how labels are made (shared by training and the offline ``ipl_label.py``)."""
    group.add_argument(
        "--ipl-unlabeled-cuts",
        type=Path,
        default=None,
        help="Unlabeled audio to pseudo-label: Lhotse cuts (.jsonl.gz) or a NeMo JSON "
        "manifest (text not needed); with --ipl-tarred-audio, the NeMo tarred manifest. "
        "Not given: no pseudo-labelling.",
    )
    group.add_argument(
        "--ipl-tarred-audio",
        type=str,
        default=None,
        help="NeMo tar shards of the unlabeled audio, e.g. 'audio_{0..7}.tar' (then train "
        "with --on-the-fly-feats 1).",
    )
    group.add_argument(
        "--ipl-cache",
        type=Path,
        default=None,
        help="The pseudo-label cache manifest (default <exp-dir>/ipl-cache.jsonl.gz); the "
        "generation before the current one is kept beside it as <stem>.prev.<suffixes>.",
    )
    group.add_argument(
        "--ipl-p-cache",
        type=float,
        default=0.2,
        help="Fraction of the unlabeled cuts relabelled at each later pass (the first pass "
        "labels all of them).",
    )
    group.add_argument(
        "--ipl-average",
        type=int,
        default=0,
        help="Label with the average of the N epoch checkpoints of lowest validation loss "
        "(0: the current weights).",
    )
    group.add_argument(
        "--ipl-decoding-method",
        type=str,
        default="auto",
        choices=IPL_DECODING_METHODS,
        help="Search that makes the labels; auto: greedy_search for a transducer, "
        "ctc_greedy_search for a CTC-only model.",
    )
    group.add_argument(
        "--ipl-beam-size", type=int, default=4, help="Beam of modified_beam_search labelling."
    )
    group.add_argument(
        "--ipl-batch-duration",
        type=float,
        default=100.0,
        help="Seconds of audio per labelling batch.",
    )
    group.add_argument(
        "--ipl-min-confidence",
        type=float,
        default=0.0,
        help="Drop labels whose confidence (per-frame geometric mean probability of the best "
        "path, in (0, 1]) is below this.",
    )


def add_ipl_arguments(parser: argparse.ArgumentParser) -> None:
    """The training side of iterative pseudo-labelling (TopIPL)."""
    group = parser.add_argument_group(
        "iterative pseudo-labelling",
        "After --ipl-n-epochs supervised epochs, the model labels --ipl-unlabeled-cuts at the "
        "start of every epoch (all cuts the first time, then a --ipl-p-cache fraction), and "
        "training uses the labelled cuts plus the pseudo-labelled ones.",
    )
    add_labelling_arguments(group)
    group.add_argument(
        "--ipl-n-epochs",
        type=int,
        default=1,
        help="Supervised epochs before the first labelling pass.",
    )
    group.add_argument(
        "--ipl-restore",
        type=str2bool,
        default=False,
        help="Start from the cache file as it is (e.g. made by ipl_label.py), also when "
        "resuming; otherwise a resumed run restores the cache generation its checkpoint "
        "trained with, and a fresh run starts with none.",
    )


def ipl_cache_path(params: Mapping[str, Any]) -> Path:
    """``--ipl-cache``, or ``<exp-dir>/ipl-cache.jsonl.gz``."""
    if params.get("ipl_cache") is not None:
        return Path(params["ipl_cache"])
    return Path(params["exp_dir"]) / "ipl-cache.jsonl.gz"


def check_ipl_arguments(params: Mapping[str, Any], training: bool = True) -> None:
    """Raise ``ValueError`` / ``FileNotFoundError`` with one line naming the ``--ipl-*``
    flag."""
    unlabeled = params.get("ipl_unlabeled_cuts")
    if unlabeled is None:
        if training and params.get("ipl_restore"):
            raise ValueError("--ipl-restore needs --ipl-unlabeled-cuts")
        return
    if not 0.0 <= params["ipl_p_cache"] <= 1.0:
        raise ValueError(f"--ipl-p-cache must be in [0, 1], got {params['ipl_p_cache']}")
    if params["ipl_average"] < 0:
        raise ValueError(f"--ipl-average must be non-negative, got {params['ipl_average']}")
    if params["ipl_batch_duration"] <= 0:
        raise ValueError(
            f"--ipl-batch-duration must be positive, got {params['ipl_batch_duration']}"
        )
    if params["ipl_beam_size"] < 1:
        raise ValueError(f"--ipl-beam-size must be at least 1, got {params['ipl_beam_size']}")
    if not 0.0 <= params["ipl_min_confidence"] < 1.0:
        raise ValueError(
            f"--ipl-min-confidence must be in [0, 1), got {params['ipl_min_confidence']}"
        )
    if training and params.get("ipl_n_epochs", 0) < 0:
        raise ValueError(f"--ipl-n-epochs must be non-negative, got {params['ipl_n_epochs']}")
    # Offline, the model's heads are known only once the checkpoint is read (checked then).
    if training and "use_transducer" in params:
        resolve_decoding_method(
            params["ipl_decoding_method"], params["use_transducer"], params["use_ctc"]
        )
    if params.get("ipl_tarred_audio"):
        from icefall_lite.data.nemo_tarred import NeMoTarredIterator

        try:
            NeMoTarredIterator(str(unlabeled), params["ipl_tarred_audio"])  # reads nothing
        except (OSError, ValueError) as error:
            raise ValueError(f"--ipl-unlabeled-cuts/--ipl-tarred-audio: {error}") from None
        if training and not params.get("on_the_fly_feats"):
            raise ValueError(
                "--ipl-tarred-audio: tarred audio has no stored features; train with "
                "--on-the-fly-feats 1"
            )
    elif not Path(unlabeled).is_file():
        raise FileNotFoundError(f"--ipl-unlabeled-cuts {unlabeled} not found")
    if training and params.get("ipl_restore") and not ipl_cache_path(params).is_file():
        raise FileNotFoundError(
            f"--ipl-restore: the cache {ipl_cache_path(params)} not found (make it with "
            "ipl_label.py, or drop --ipl-restore to label during training)"
        )
