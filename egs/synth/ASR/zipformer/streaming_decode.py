#!/usr/bin/env python3
"""Decode the synth test sets chunk by chunk with a causal (--causal 1) Zipformer transducer.

Usage, from egs/synth/ASR:

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

from icefall_lite.streaming.decode_main import (  # noqa: E402
    get_streaming_decode_parser,
    run_streaming_decode,
)
from icefall_lite.utils import AttributeDict  # noqa: E402

TEST_SETS = ("dev", "test-synth", "test-human")


def get_parser():
    parser = get_streaming_decode_parser(TEST_SETS, description=__doc__.splitlines()[0])
    parser.set_defaults(exp_dir="zipformer/exp", bpe_model="data/lang_bpe_128/bpe.model")
    return parser


def get_params() -> AttributeDict:
    """Fixed settings; the model's own come from the checkpoint."""
    return AttributeDict({"feature_dim": 80, "blank_id": 0})


def main() -> None:
    run_streaming_decode(get_parser(), sys.argv[1:], dataset_prefix="synth", defaults=get_params())


if __name__ == "__main__":
    main()
