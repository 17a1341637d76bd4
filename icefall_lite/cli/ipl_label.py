"""Offline pseudo-labelling (the offline mode of TopIPL): label the unlabeled cuts with an
averaged model into the cache, between two training runs.

The model is the one ``--epoch/--iter/--avg/--use-averaged-model`` select (as for decoding), or,
with ``--ipl-average N``, the mean of the N epoch checkpoints of lowest validation loss. The
first pass labels every cut; when the cache already holds labels, the next generation relabels
a ``--ipl-p-cache`` fraction (all with ``--ipl-p-cache 1``). Training then picks the cache up
with ``--ipl-restore 1`` (and resumes with ``--start-epoch``), so the unlabeled set is never
held inside a training process.
"""

import argparse
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import torch

from icefall_lite.checkpoint import (
    CheckpointError,
    add_model_averaging_arguments,
    read_checkpoint,
    stored_params,
)
from icefall_lite.cli.checkpoints import (
    apply_checkpoint_params,
    build_averaged_model,
    explicit_arguments,
    model_flag_names,
    resolve_model_params,
)
from icefall_lite.data import load_bpe_model
from icefall_lite.errors import UsageError
from icefall_lite.ipl import (
    LabelOutcome,
    PseudoLabelCache,
    add_labelling_arguments,
    averaged_labeller,
    best_epochs,
    check_ipl_arguments,
    cut_ids,
    ipl_cache_path,
    label_cuts,
    load_unlabeled_cuts,
    resolve_decoding_method,
    select_for_relabel,
)
from icefall_lite.ipl.unlabeled import iterate_shard
from icefall_lite.models import add_zipformer_model_arguments, build_model
from icefall_lite.utils import AttributeDict, setup_logger

__all__ = ["epoch_valid_losses", "get_ipl_label_parser", "run_ipl_label"]

_EPOCH_RE = re.compile(r"epoch-(\d+)\.pt$")


def get_ipl_label_parser(description: str) -> argparse.ArgumentParser:
    """The offline labeller's flags: checkpoint selection, the ``--ipl-*`` labelling flags,
    the BPE model, the seed of the relabel draw."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_model_averaging_arguments(parser)
    add_labelling_arguments(parser.add_argument_group("pseudo-labelling"))
    parser.add_argument(
        "--bpe-model", type=Path, default=Path("data/lang_bpe_500/bpe.model"), help="BPE model."
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="Seed of the draw of the cuts to relabel (training's --seed gives the same draw).",
    )
    parser.add_argument(
        "--num-threads", type=int, default=0, help="torch CPU threads (0: torch's default)."
    )
    add_zipformer_model_arguments(parser)
    return parser


def epoch_valid_losses(exp_dir: Path) -> Dict[int, float]:
    """epoch -> the validation loss stored in ``<exp_dir>/epoch-N.pt`` (files without one are
    left out)."""
    losses = {}
    for path in exp_dir.glob("epoch-*.pt"):
        found = _EPOCH_RE.search(path.name)
        if found is None:
            continue
        loss = read_checkpoint(path).get("valid_loss")
        if isinstance(loss, (int, float)):
            losses[int(found.group(1))] = float(loss)
    return losses


def _load_model(params: AttributeDict, explicit: Mapping[str, Any], device: torch.device):
    if params.ipl_average > 0:
        files: List[Path] = best_epochs(
            epoch_valid_losses(params.exp_dir), params.exp_dir, params.ipl_average
        )
        if not files:
            raise CheckpointError(
                f"--ipl-average {params.ipl_average}: no epoch-N.pt with a validation loss in "
                f"{params.exp_dir}"
            )
        stored = stored_params(read_checkpoint(files[0]))
        apply_checkpoint_params(params, stored, model_flag_names(), explicit, str(files[0]))
        logging.info(f"Labelling with the average of {[f.name for f in files]}")
        return averaged_labeller(build_model(params), files, device)
    files = resolve_model_params(params, model_flag_names(), explicit)
    return build_averaged_model(params, build_model, device, files)


def run_ipl_label(
    parser: argparse.ArgumentParser, argv: Sequence[str], defaults: Mapping[str, Any]
) -> LabelOutcome:
    """Parse ``argv`` and write the next cache generation. Returns the pass's outcome."""
    args = parser.parse_args(list(argv))
    explicit = explicit_arguments(parser, argv)
    params = AttributeDict(defaults)
    params.update(vars(args))
    params.exp_dir = Path(params.exp_dir)
    if params.ipl_unlabeled_cuts is None:
        raise UsageError("--ipl-unlabeled-cuts is required")
    try:
        check_ipl_arguments(params, training=False)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if params.num_threads > 0:
        torch.set_num_threads(params.num_threads)
    setup_logger(f"{params.exp_dir}/log/log-ipl-label")
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    model = _load_model(params, explicit, device)
    try:
        method = resolve_decoding_method(
            params.ipl_decoding_method, params.use_transducer, params.use_ctc
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    sp = load_bpe_model(params.bpe_model)
    if sp.get_piece_size() != params.vocab_size:
        raise UsageError(
            f"--bpe-model {params.bpe_model} has {sp.get_piece_size()} tokens but the model was "
            f"trained with vocab_size {params.vocab_size}"
        )

    path = ipl_cache_path(params)
    unlabeled = load_unlabeled_cuts(params.ipl_unlabeled_cuts, params.ipl_tarred_audio)
    ids = cut_ids(unlabeled)
    cache = PseudoLabelCache.read(path) if path.is_file() else PseudoLabelCache()
    cache.check_cuts_exist(ids, path, params.ipl_unlabeled_cuts)
    chosen = select_for_relabel(ids, params.ipl_p_cache, params.seed, cache.generation)
    logging.info(
        f"Labelling {len(chosen)} of {len(ids)} cuts with {method} on {device} "
        f"(generation {cache.generation + 1})"
    )
    outcome = label_cuts(
        model,
        iterate_shard(unlabeled, chosen),
        sp,
        method,
        generation=cache.generation + 1,
        batch_duration=params.ipl_batch_duration,
        min_confidence=params.ipl_min_confidence,
        beam_size=params.ipl_beam_size,
    )
    cache = cache.updated(outcome.labels)
    cache.write(path)
    logging.info(f"Done: {outcome.summary()}; {path} has {len(cache)} labels")
    return outcome
