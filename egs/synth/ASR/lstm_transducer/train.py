#!/usr/bin/env python3
"""Train an LSTM transducer (RNN-T of the Myrtle.ai / MLPerf kind: LSTM encoder with frame
stacking and time reduction, LSTM prediction network, full or pruned RNN-T loss).

One script for every dataset: egs/synth/ASR/lstm_transducer/train.py, and
egs/librispeech/ASR/lstm_transducer/train.py, a relative symlink to it; the dataset's names,
splits and defaults come from recipe_defaults.py in the folder the script is run from.

It writes <exp-dir>/epoch-N.pt, checkpoint-N.pt (with the EMA weights and the schedule state),
best-*.pt, log/log-train-* and tensorboard/. Decode with ./lstm_transducer/decode.py.
"""

import argparse
import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

# Before anything loads torch (and with it libgomp, which reads OMP_WAIT_POLICY once).
from icefall_lite.threads import choose_omp_wait_policy  # noqa: E402

OMP_WAIT_POLICY_CHOICE = choose_omp_wait_policy()

# isort: split
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402
from icefall_lite.data import AsrDataModule  # noqa: E402
from icefall_lite.models import add_lstm_transducer_arguments  # noqa: E402
from icefall_lite.training import (  # noqa: E402
    HelpFormatter,
    add_training_arguments,
    get_training_params,
    train,
)
from icefall_lite.utils import AttributeDict  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=f"{__doc__}\n{RECIPE.TRAIN_USAGE}", formatter_class=HelpFormatter
    )
    add_training_arguments(parser)
    add_lstm_transducer_arguments(parser)
    AsrDataModule.add_arguments(parser)
    RECIPE.add_arguments(parser)
    parser.set_defaults(**RECIPE.TRAIN_DEFAULTS)
    return parser


def get_params() -> AttributeDict:
    """Fixed hyper-parameters: the loop's (see get_training_params) with the dataset's own."""
    params = get_training_params()
    params.update(RECIPE.TRAIN_PARAMS)
    return params


def main() -> None:
    def run(argv):
        args = get_parser().parse_args(argv)
        params = get_params()
        params.update(vars(args))
        params.omp_wait_policy = OMP_WAIT_POLICY_CHOICE
        train(
            params,
            cuts_prefix=params.get("cuts_prefix") or RECIPE.DATASET,
            train_splits=RECIPE.train_splits(params),
            valid_splits=list(RECIPE.VALID_SPLITS),
        )

    # A bad flag, file or a full disk: one line (a traceback with --debug or ICEFALL_LITE_DEBUG=1).
    run_main(Path(__file__).name, run)


if __name__ == "__main__":
    main()
