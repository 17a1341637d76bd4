#!/usr/bin/env python3
"""Decode a dataset's test sets chunk by chunk with an LSTM transducer: the encoder carries its
LSTM states from chunk to chunk, the searches the prediction network's.

One script for every dataset (egs/librispeech/ASR/lstm_transducer/streaming_decode.py is a
relative symlink to this file). Usage, from egs/synth/ASR:

# features normalised over each whole utterance (what training saw; not causal)
./lstm_transducer/streaming_decode.py --epoch 5 --avg 2 --chunk-size 8 \\
    --decoding-method greedy_search

# streaming normalisation: running per-bin statistics, frame by frame, from the training data's
# (./lstm_transducer/dump_mel_stats.py), reset for every utterance
./lstm_transducer/streaming_decode.py --epoch 5 --avg 2 --chunk-size 8 --stream-norm 1 \\
    --decoding-method modified_beam_search --beam-size 4

# ... or carried from utterance to utterance (sequential: one stream at a time)
./lstm_transducer/streaming_decode.py --epoch 5 --avg 2 --stream-norm 1 \\
    --reset-stream-stats 0 --num-decode-streams 1

--chunk-size is in encoder frames (8 = 48 fbank frames = 480 ms). Results go to
<exp-dir>/streaming/<decoding-method>/ with decode.py's file names, so they compare with
./lstm_transducer/decode.py --chunk-size 8 [--stream-norm 1]; RTF and time per chunk are logged.
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402
from icefall_lite.cli.streaming_decode import (  # noqa: E402
    get_streaming_decode_parser,
    run_streaming_decode,
)
from icefall_lite.models import add_lstm_transducer_model_arguments  # noqa: E402
from icefall_lite.models.lstm_transducer import add_lstm_chunk_arguments  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    description = f"Decode the {RECIPE.DATASET} test sets chunk by chunk."
    parser = get_streaming_decode_parser(
        RECIPE.TEST_SETS, description, add_lstm_transducer_model_arguments
    )
    add_lstm_chunk_arguments(parser, RECIPE.CHUNK_SIZE)
    parser.set_defaults(
        exp_dir=RECIPE.EXP_DIR,
        bpe_model=f"{RECIPE.LANG_DIR}/bpe.model",
        stream_norm_stats=RECIPE.MEL_STATS,
    )
    return parser


def main() -> None:
    def decode(argv):
        run_streaming_decode(get_parser(), argv, RECIPE.DATASET, defaults=get_params())

    run_main(Path(__file__).name, decode)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
