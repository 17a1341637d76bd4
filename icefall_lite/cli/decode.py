"""What every ``<recipe>/decode.py`` does once its flags are parsed: pick the checkpoints, build the
model they describe, open the test sets and decode them all.

A recipe's decode.py only differs in its defaults and test sets; it calls :func:`get_decode_parser`
and :func:`run_decode`.
"""

import argparse
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from icefall_lite.checkpoint import add_model_averaging_arguments
from icefall_lite.cli.checkpoints import (
    build_averaged_model,
    explicit_arguments,
    model_flag_names,
    resolve_model_params,
)
from icefall_lite.cli.evaluate import (
    decode_test_sets,
    decoding_suffix,
    load_test_cuts,
    result_key,
)
from icefall_lite.data import AsrDataModule, load_bpe_model
from icefall_lite.data.nemo import nemo_to_cuts
from icefall_lite.errors import UsageError
from icefall_lite.models import add_zipformer_model_arguments, build_model
from icefall_lite.models.interface import has_ctc_head, has_transducer
from icefall_lite.search.decoding import (
    CTC_METHODS,
    DECODING_METHODS,
    LM_METHODS,
    TRANSDUCER_METHODS,
)
from icefall_lite.search.lm_fusion import LmFusion
from icefall_lite.search.transducer_common import check_stateless
from icefall_lite.streaming.normalization import FeatureNorm, StreamingNormalizer, load_mel_stats
from icefall_lite.utils import AttributeDict, setup_logger, str2bool

__all__ = [
    "default_lm_path",
    "add_decoding_arguments",
    "add_stream_norm_arguments",
    "feature_norm_for",
    "load_lm_fusion",
    "check_data_flags",
    "check_decoding_arguments",
    "check_search_flags",
    "decoding_suffix",
    "get_decode_parser",
    "parse_decode_params",
    "result_key",
    "run_decode",
]


def default_lm_path(lang_dir: str, order: int = 5) -> Path:
    """Where prepare.sh's LM stage writes the token n-gram of ``lang_dir``'s BPE model:
    ``data/lm/<lang dir name>_<order>gram.arpa``."""
    return Path("data/lm") / f"{Path(lang_dir).name}_{order}gram.arpa"


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """icefall's decoding flags: method, beam settings, ``--skip-scoring``."""
    group = parser.add_argument_group("decoding")
    group.add_argument(
        "--decoding-method",
        type=str,
        default="greedy_search",
        choices=DECODING_METHODS,
        help="Search: greedy_search, beam_search (Graves 2012), modified_beam_search (one "
        "symbol per frame, batched), fast_beam_search(_nbest) (pruned lattice search), or for "
        "models with a CTC head ctc_greedy_search, ctc_prefix_beam_search.",
    )
    group.add_argument(
        "--beam-size",
        type=int,
        default=4,
        help="Hypotheses kept per utterance by beam_search, modified_beam_search and "
        "ctc_prefix_beam_search.",
    )
    group.add_argument(
        "--beam",
        type=float,
        default=20.0,
        help="fast_beam_search: log-probability beam (like Kaldi's --beam).",
    )
    group.add_argument(
        "--max-contexts",
        type=int,
        default=8,
        help="fast_beam_search: most decoder contexts kept per utterance and frame.",
    )
    group.add_argument(
        "--max-states",
        type=int,
        default=64,
        help="fast_beam_search: most search states kept per utterance and frame.",
    )
    group.add_argument(
        "--max-sym-per-frame",
        type=int,
        default=1,
        help="greedy_search: most non-blank symbols emitted on one frame.",
    )
    group.add_argument(
        "--num-paths",
        type=int,
        default=200,
        help="fast_beam_search_nbest: paths sampled from the lattice per utterance.",
    )
    group.add_argument(
        "--nbest-scale",
        type=float,
        default=0.5,
        help="fast_beam_search_nbest: lattice scores are scaled by this before sampling "
        "(smaller: more diverse paths).",
    )
    group.add_argument(
        "--lm-type",
        type=str,
        default="none",
        choices=("none", "ngram"),
        help="ngram: shallow fusion of the token-level n-gram LM --lm-path into "
        "modified_beam_search or ctc_prefix_beam_search (icefall's flag name).",
    )
    group.add_argument(
        "--lm-path",
        type=Path,
        default=default_lm_path("data/lang_bpe_500"),
        help="ARPA file of the n-gram LM over the model's BPE tokens (prepare.sh's LM stage "
        "builds it from the training transcripts); plain or .gz.",
    )
    group.add_argument(
        "--lm-scale",
        type=float,
        default=0.3,
        help="--lm-type ngram: weight of the LM's log-probabilities in the search score.",
    )
    group.add_argument(
        "--word-insertion-bonus",
        type=float,
        default=0.0,
        help="--lm-type ngram: added to the score for every word begun (offsets the LM's "
        "preference for fewer words).",
    )
    group.add_argument(
        "--skip-scoring",
        type=str2bool,
        default=False,
        help="Only write recogs-* (for test sets without transcripts); no errs/wer-summary.",
    )


def add_stream_norm_arguments(parser: argparse.ArgumentParser) -> None:
    """Streaming normalisation flags, for models trained on per-utterance normalised features
    (the LSTM transducer)."""
    group = parser.add_argument_group("streaming normalisation")
    group.add_argument(
        "--stream-norm",
        type=str2bool,
        default=False,
        help="Normalise features with running per-bin statistics, frame by frame, instead of "
        "over each whole utterance (models trained with per-utterance normalisation).",
    )
    group.add_argument(
        "--stream-norm-stats",
        type=Path,
        default=Path("data/fbank/mel_stats.pt"),
        help="The training data's per-bin mean and variance the running statistics start from "
        "(./lstm_transducer/dump_mel_stats.py writes it).",
    )
    group.add_argument(
        "--stream-norm-alpha",
        type=float,
        default=0.001,
        help="Weight of each new frame in the running statistics.",
    )
    group.add_argument(
        "--reset-stream-stats",
        type=str2bool,
        default=True,
        help="Start every utterance from the training statistics (as a new inference-server "
        "channel does); 0: continue from the previous utterance's (in the order utterances "
        "finish; sequential with --num-decode-streams 1 or --max-duration of one utterance).",
    )


def feature_norm_for(params: Mapping[str, Any], model: nn.Module) -> Optional[FeatureNorm]:
    """The normalisation the decoding drivers apply outside the model (None: the model
    normalises its own input, or needs none); a one-line error for --stream-norm with a model
    that was not trained on normalised features."""
    if getattr(model, "input_normalization", "none") != "utterance":
        if params.get("stream_norm"):
            raise UsageError(
                "--stream-norm 1: this model does not normalise its input features (only "
                "models trained on per-utterance normalised features, e.g. lstm_transducer)"
            )
        return None
    if not params.get("stream_norm"):
        return FeatureNorm(None)
    mean, var = load_mel_stats(params["stream_norm_stats"])
    try:
        stats = StreamingNormalizer(mean, var, alpha=params["stream_norm_alpha"])
    except ValueError as error:
        raise UsageError(str(error)) from None
    return FeatureNorm(stats, reset=params.get("reset_stream_stats", True))


def check_search_flags(params: Mapping[str, Any]) -> None:
    """One-line errors (UsageError) for search settings no model can use: an unknown method,
    a beam size, context or path count below 1, a beam or n-best scale not above 0."""
    method = params["decoding_method"]
    if method not in DECODING_METHODS:
        raise UsageError(f"--decoding-method {method}: expected one of {DECODING_METHODS}")
    for flag, key in (
        ("--beam-size", "beam_size"),
        ("--max-contexts", "max_contexts"),
        ("--max-states", "max_states"),
        ("--max-sym-per-frame", "max_sym_per_frame"),
        ("--num-paths", "num_paths"),
    ):
        if params.get(key, 1) < 1:
            raise UsageError(f"{flag} must be >= 1, got {params[key]}")
    for flag, key in (("--beam", "beam"), ("--nbest-scale", "nbest_scale")):
        if params.get(key, 1.0) <= 0:
            raise UsageError(f"{flag} must be > 0, got {params[key]}")
    if params.get("lm_type", "none") != "none":
        if method not in LM_METHODS:
            raise UsageError(
                f"--lm-type {params['lm_type']} works with --decoding-method "
                f"{' or '.join(LM_METHODS)}, not {method}"
            )
        if params["lm_scale"] < 0:
            raise UsageError(f"--lm-scale must be >= 0, got {params['lm_scale']}")


def check_data_flags(params: Mapping[str, Any]) -> None:
    """One-line errors for data-loading settings of decoding (``--max-duration`` not above 0,
    a negative ``--num-workers``), before lhotse's sampler asserts on them."""
    if "max_duration" in params and not params["max_duration"] > 0:
        raise UsageError(
            f"--max-duration must be > 0 (seconds of audio per batch), got {params['max_duration']}"
        )
    if params.get("num_workers", 0) < 0:
        raise UsageError(f"--num-workers must be >= 0, got {params['num_workers']}")


def check_decoding_arguments(params: Mapping[str, Any], model: nn.Module) -> None:
    """One-line errors for settings the model or the method cannot use (and those of
    :func:`check_search_flags`)."""
    check_search_flags(params)
    method = params["decoding_method"]
    if method in CTC_METHODS and not has_ctc_head(model):
        raise UsageError(f"--decoding-method {method} needs a model trained with --use-ctc 1")
    if method in TRANSDUCER_METHODS and not has_transducer(model):
        raise UsageError(
            f"--decoding-method {method} needs a transducer model (trained with "
            f"--use-transducer 1); for a CTC-only model use {' or '.join(CTC_METHODS)}"
        )
    if method.startswith("fast_beam_search") and has_transducer(model):
        try:
            check_stateless(model, method)
        except ValueError as error:
            raise UsageError(str(error)) from None


def get_decode_parser(
    test_sets: Sequence[str],
    description: str,
    add_model_flags: Callable[[argparse.ArgumentParser], None] = add_zipformer_model_arguments,
) -> argparse.ArgumentParser:
    """Every decode.py flag: checkpoint selection, decoding, data, and the model flags (only to
    check them against the checkpoint; the model is built from the checkpoint's params).

    Args:
      add_model_flags: adds the model family's architecture flags (default: the Zipformer's;
        the training-loss weights are left out: ``--lm-scale`` here is LM fusion's).
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_model_averaging_arguments(parser)
    parser.add_argument(
        "--bpe-model",
        type=str,
        default="data/lang_bpe_500/bpe.model",
        help="SentencePiece model; default: the one the checkpoint was trained with, if recorded.",
    )
    parser.add_argument(
        "--test-sets",
        type=str,
        default=",".join(test_sets),
        help="Comma-separated test sets (cut file splits) to decode.",
    )
    parser.add_argument(
        "--nemo-manifest",
        type=Path,
        action="append",
        default=[],
        help="A NeMo (or Myrtle) JSON manifest to decode as one more test set named after the "
        "file (repeatable; audio, so fbank is computed on the fly; bad lines are logged and "
        "skipped). Writes <exp-dir>/<method>/nemo-<name>-<suffix>.json with pred_text beside "
        'recogs/errs/wer-summary. Use --test-sets "" to decode only the manifests.',
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=0,
        help="torch CPU threads for decoding (0: torch's default).",
    )
    add_decoding_arguments(parser)
    add_stream_norm_arguments(parser)
    AsrDataModule.add_arguments(parser)
    add_model_flags(parser)
    return parser


def parse_decode_params(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    defaults: Mapping[str, Any],
    check: Optional[Callable[[AttributeDict], None]] = None,
) -> Tuple[argparse.Namespace, AttributeDict, List[str]]:
    """Parse a decoding command line into the recipe's params, completed from the checkpoint.

    Flags override ``defaults``; model flags the user did not give are taken from the params
    stored in the checkpoint that ``--epoch/--iter`` select (a given one that contradicts them
    is an error). ``check``, if given, validates the flags before any checkpoint is read.
    Returns:
      (the parsed flags, the merged params, the checkpoint files selected, oldest first).
    """
    args = parser.parse_args(list(argv))
    explicit = explicit_arguments(parser, argv)
    params = AttributeDict(defaults)
    params.update(vars(args))
    params.exp_dir = Path(params.exp_dir)
    if params.num_threads > 0:
        torch.set_num_threads(params.num_threads)
    check_search_flags(params)
    check_data_flags(params)
    if params.exp_dir.exists() and not params.exp_dir.is_dir():
        raise UsageError(f"--exp-dir {params.exp_dir}: not a directory (it is a file)")
    if check is not None:
        check(params)
    files = resolve_model_params(params, model_flag_names(), explicit)
    return args, params, files


def run_decode(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    dataset_prefix: str,
    defaults: Mapping[str, Any],
    wrap_model: Optional[Callable[[nn.Module, AttributeDict], nn.Module]] = None,
    result_subdir: str = "",
) -> Dict[str, Any]:
    """Parse ``argv`` with ``parser`` (from :func:`get_decode_parser`) and decode.

    Args:
      dataset_prefix: cut files are ``<manifest-dir>/<prefix>_cuts_<test-set>.jsonl.gz``.
      defaults: the recipe's ``get_params()`` (flags override them).
      wrap_model: replaces the loaded model by ``wrap_model(model, params)`` before decoding
        (e.g. buffered streaming of a non-causal CTC model).
      result_subdir: results go to ``<exp-dir>/<result_subdir>/<decoding-method>/``.
    Returns:
      test set -> (WER % or None, DecodeStats).
    """
    args, params, files = parse_decode_params(parser, argv, defaults)
    dataset_prefix = params.get("cuts_prefix") or dataset_prefix
    params.res_dir = params.exp_dir / result_subdir / params.decoding_method
    params.suffix = decoding_suffix(params)
    # A missing, malformed or mismatched LM is found before any work or log line.
    fusion = None
    if params.get("lm_type", "none") != "none":
        fusion = load_lm_fusion(params, load_bpe_model(params.bpe_model))
    setup_logger(f"{params.res_dir}/log-decode-{params.suffix}")
    logging.info("Decoding started")
    logging.info(params)
    if fusion is not None:
        logging.info(f"LM fusion: {params.lm_path} ({fusion.lm.order}-gram over BPE tokens)")

    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    logging.info(f"Device: {device}")
    model = build_averaged_model(params, build_model, device, files)
    check_decoding_arguments(params, model)
    feature_norm = feature_norm_for(params, model)
    if params.stream_norm and feature_norm is not None:
        logging.info(f"Streaming normalisation from {params.stream_norm_stats}")
    params.feature_norm = feature_norm
    if wrap_model is not None:
        model = wrap_model(model, params)

    sp = load_bpe_model(params.bpe_model)
    if sp.get_piece_size() != params.vocab_size:
        raise UsageError(
            f"--bpe-model {params.bpe_model} has {sp.get_piece_size()} tokens but the model was "
            f"trained with vocab_size {params.vocab_size}"
        )

    data_module = AsrDataModule(args)
    test_sets = {}
    for name in [s for s in params.test_sets.split(",") if s]:
        cuts = load_test_cuts(data_module, dataset_prefix, name)
        test_sets[name] = data_module.test_dataloaders(cuts)
    nemo_inputs = {}
    if params.nemo_manifest:
        # Audio, not stored features: fbank on the fly, as the fbank stage computes it.
        audio_module = AsrDataModule(argparse.Namespace(**{**vars(args), "on_the_fly_feats": True}))
        for manifest in params.nemo_manifest:
            name = Path(manifest).stem
            if not Path(manifest).is_file():
                raise UsageError(f"--nemo-manifest {manifest}: no such file")
            if name in test_sets:
                raise UsageError(f"--nemo-manifest {manifest}: test set {name} given twice")
            nemo_inputs[name] = nemo_to_cuts(manifest).to_eager()
            test_sets[name] = audio_module.test_dataloaders(nemo_inputs[name])

    summary = decode_test_sets(
        params,
        model,
        lambda ids: sp.decode(ids).split(),
        test_sets,
        nemo_inputs=nemo_inputs,
        fusion=fusion,
    )
    logging.info("Done!")
    return summary


def load_lm_fusion(params: Mapping[str, Any], sp: Any) -> Optional[LmFusion]:
    """The language model ``--lm-type`` / ``--lm-path`` name with its weights, checked against
    the BPE model's pieces (None for ``--lm-type none``). A missing or malformed ARPA file or a
    vocabulary mismatch is a one-line UsageError."""
    if params.get("lm_type", "none") == "none":
        return None
    from icefall_lite.lm import load_token_lm_fusion

    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    return load_token_lm_fusion(
        params["lm_path"], pieces, params["lm_scale"], params.get("word_insertion_bonus", 0.0)
    )
