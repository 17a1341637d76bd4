#!/usr/bin/env python3
"""Train a Jasper/QuartzNet CTC model (1-D convolution blocks, CTC loss, Novograd).

One script for every dataset: egs/synth/ASR/conv_ctc/train.py, and
egs/librispeech/ASR/conv_ctc/train.py, a relative symlink to it. The dataset's names, splits,
extra flags and defaults come from recipe_defaults.py in the folder the script is run from
(the usage below is that dataset's). The training loop is the Zipformer recipe's
(icefall_lite.training); only the model family (model_family = conv_ctc) and the defaults
differ.

It writes <exp-dir>/epoch-N.pt, checkpoint-N.pt, best-train-loss.pt, best-valid-loss.pt,
log/log-train-* and tensorboard/. Decode with ./conv_ctc/decode.py --epoch N --avg K.
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
from icefall_lite.models.conv_ctc import add_conv_ctc_arguments  # noqa: E402
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
    add_conv_ctc_arguments(parser)
    AsrDataModule.add_arguments(parser)
    RECIPE.add_arguments(parser)
    parser.set_defaults(**RECIPE.TRAIN_DEFAULTS)
    return parser


def get_params() -> AttributeDict:
    """Fixed hyper-parameters: the loop's (see get_training_params) with the recipe's own,
    among them model_family, which decode/export read back from the checkpoints."""
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
