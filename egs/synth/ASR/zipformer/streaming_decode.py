#!/usr/bin/env python3
"""Decode a dataset's test sets chunk by chunk with a causal (--causal 1) Zipformer transducer.

One script for every dataset (egs/librispeech/ASR/zipformer/streaming_decode.py is a relative
symlink to egs/synth/ASR/zipformer/streaming_decode.py): test sets and names come from
recipe_defaults.py in the folder it is run from. Usage, from egs/synth/ASR or
egs/librispeech/ASR:

./zipformer/streaming_decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --chunk-size 16 --left-context-frames 128 --num-decode-streams 2000 \\
    --decoding-method greedy_search

./zipformer/streaming_decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --chunk-size 32 --left-context-frames 256 --decoding-method modified_beam_search --beam-size 4

./zipformer/streaming_decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --chunk-size 16 --left-context-frames 128 --decoding-method fast_beam_search \\
    --beam 4 --max-contexts 4 --max-states 32

--chunk-size is in 50 Hz frames (16 = 320 ms, 32 = 640 ms), --left-context-frames too. Up to
--num-decode-streams utterances are decoded together; each joins when a slot frees up and
leaves when its last chunk is done. Results go to <exp-dir>/streaming/<decoding-method>/ with
the file names decode.py uses (recogs-*, errs-*, wer-summary-*), so they compare directly with
simulated streaming (./zipformer/decode.py --chunk-size C --left-context-frames L); RTF and
time per chunk are logged at the end.
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

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    description = f"Decode the {RECIPE.DATASET} test sets chunk by chunk."
    parser = get_streaming_decode_parser(RECIPE.TEST_SETS, description=description)
    parser.set_defaults(exp_dir="zipformer/exp", bpe_model=f"{RECIPE.LANG_DIR}/bpe.model")
    return parser


def main() -> None:
    def decode(argv):
        run_streaming_decode(get_parser(), argv, RECIPE.DATASET, defaults=get_params())

    run_main(Path(__file__).name, decode)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
