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

from icefall_lite.checkpoint import add_model_averaging_arguments
from icefall_lite.data import AsrDataModule, load_bpe_model
from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.search.decoding import (
    add_decoding_arguments,
    check_decoding_arguments,
    decode_test_sets,
    decoding_suffix,
)
from icefall_lite.search.model_loading import (
    add_tracked_arguments,
    build_averaged_model,
    explicit_arguments,
    resolve_model_params,
)
from icefall_lite.utils import AttributeDict, setup_logger


def model_flag_names() -> List[str]:
    """``dest`` names of the model and encoder flags (those checked against checkpoints)."""
    return add_tracked_arguments(argparse.ArgumentParser(), add_model_arguments)


def get_decode_parser(test_sets: Sequence[str], description: str) -> argparse.ArgumentParser:
    """Every decode.py flag: checkpoint selection, decoding, data, and the model flags (only to
    check them against the checkpoint; the model is built from the checkpoint's params)."""
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
        "--num-threads",
        type=int,
        default=0,
        help="torch CPU threads for decoding (0: torch's default).",
    )
    add_decoding_arguments(parser)
    AsrDataModule.add_arguments(parser)
    add_model_arguments(parser)
    return parser


def parse_decode_params(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    defaults: Mapping[str, Any],
    check: Optional[Callable[[AttributeDict], None]] = None,
) -> Tuple[argparse.Namespace, AttributeDict]:
    """Parse a decoding command line into the recipe's params, completed from the checkpoint.

    Flags override ``defaults``; model flags the user did not give are taken from the params
    stored in the checkpoint that ``--epoch/--iter`` select (a given one that contradicts them
    is an error). ``check``, if given, validates the flags before any checkpoint is read.
    Returns:
      (the parsed flags, the merged params).
    """
    args = parser.parse_args(list(argv))
    explicit = explicit_arguments(parser, argv)
    params = AttributeDict(defaults)
    params.update(vars(args))
    params.exp_dir = Path(params.exp_dir)
    if params.num_threads > 0:
        torch.set_num_threads(params.num_threads)
    if check is not None:
        check(params)
    resolve_model_params(params, model_flag_names(), explicit)
    return args, params


def run_decode(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    dataset_prefix: str,
    defaults: Mapping[str, Any],
) -> Dict[str, Any]:
    """Parse ``argv`` with ``parser`` (from :func:`get_decode_parser`) and decode.

    Args:
      dataset_prefix: cut files are ``<manifest-dir>/<prefix>_cuts_<test-set>.jsonl.gz``.
      defaults: the recipe's ``get_params()`` (flags override them).
    Returns:
      test set -> (WER % or None, DecodeStats).
    """
    args, params = parse_decode_params(parser, argv, defaults)
    params.res_dir = params.exp_dir / params.decoding_method
    params.suffix = decoding_suffix(params)
    setup_logger(f"{params.res_dir}/log-decode-{params.suffix}")
    logging.info("Decoding started")
    logging.info(params)

    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    logging.info(f"Device: {device}")
    model = build_averaged_model(params, build_model, device)
    check_decoding_arguments(params, model)

    sp = load_bpe_model(params.bpe_model)
    if sp.get_piece_size() != params.vocab_size:
        raise ValueError(
            f"--bpe-model {params.bpe_model} has {sp.get_piece_size()} tokens but the model was "
            f"trained with vocab_size {params.vocab_size}"
        )

    data_module = AsrDataModule(args)
    test_sets = {}
    for name in [s for s in params.test_sets.split(",") if s]:
        test_sets[name] = data_module.test_dataloaders(data_module.load_cuts(dataset_prefix, name))

    summary = decode_test_sets(params, model, lambda ids: sp.decode(ids).split(), test_sets)
    logging.info("Done!")
    return summary
