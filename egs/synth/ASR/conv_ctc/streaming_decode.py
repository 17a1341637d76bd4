#!/usr/bin/env python3
"""Decode a dataset's test sets with a Jasper/QuartzNet CTC model in buffered chunks.

The model is not causal, so it streams the way NeMo's buffered CTC inference does
(icefall_lite/streaming/buffered.py): each chunk of --chunk-frames fbank frames is encoded in a
window with --left-context frames of history and --right-context frames of look-ahead, and only
the chunk's own output frames are kept. Latency: (chunk + right) * 10 ms plus one window's
compute; with left and right at least the model's context (logged), the output equals
full-context decoding. Usage, from egs/synth/ASR:

./conv_ctc/streaming_decode.py --epoch 6 --avg 2 --chunk-frames 120 --left-context 240 \\
    --right-context 120 --decoding-method ctc_greedy_search

./conv_ctc/streaming_decode.py --epoch 6 --avg 2 --chunk-frames 60 --left-context 120 \\
    --right-context 60 --decoding-method ctc_prefix_beam_search --lm-type ngram

Results go to <exp-dir>/streaming/<decoding-method>/ (recogs-*, errs-*, wer-summary-*, the
suffix naming chunk and contexts), next to decode.py's full-context ones.
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.decode import default_lm_path, get_decode_parser  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402
from icefall_lite.cli.streaming_decode import (  # noqa: E402
    add_buffered_arguments,
    run_buffered_decode,
)
from icefall_lite.models.conv_ctc import add_conv_ctc_arguments  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    description = f"Decode the {RECIPE.DATASET} test sets in buffered chunks."
    parser = get_decode_parser(
        RECIPE.TEST_SETS, description=description, add_model_flags=add_conv_ctc_arguments
    )
    add_buffered_arguments(parser)
    parser.set_defaults(
        exp_dir="conv_ctc/exp",
        bpe_model=f"{RECIPE.LANG_DIR}/bpe.model",
        decoding_method="ctc_greedy_search",
        lm_path=default_lm_path(RECIPE.LANG_DIR),
    )
    return parser


def main() -> None:
    def decode(argv):
        run_buffered_decode(get_parser(), argv, RECIPE.DATASET, defaults=get_params())

    run_main(Path(__file__).name, decode)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
