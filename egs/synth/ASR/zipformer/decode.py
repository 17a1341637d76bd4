#!/usr/bin/env python3
"""Decode the synth test sets (dev, test-synth, test-human) with a trained Zipformer transducer.

Usage, from egs/synth/ASR:

(1) greedy search
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method greedy_search

(2) beam search (Graves 2012, as in ESPnet)
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method beam_search --beam-size 4

(3) modified beam search (one symbol per frame, batched)
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method modified_beam_search --beam-size 4

(4) fast beam search, one-best and n-best
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method fast_beam_search \\
    --beam 20.0 --max-contexts 8 --max-states 64
./zipformer/decode.py --epoch 30 --avg 9 --exp-dir ./zipformer/exp \\
    --max-duration 600 --decoding-method fast_beam_search_nbest \\
    --beam 20.0 --max-contexts 8 --max-states 64 --num-paths 200 --nbest-scale 0.5

(5) CTC head (models trained with --use-ctc 1)
./zipformer/decode.py --epoch 30 --avg 9 --decoding-method ctc_prefix_beam_search --beam-size 4

Checkpoints: --epoch/--iter pick the last checkpoint, --avg how many to average;
--use-averaged-model 1 (default) averages exactly over the training window from the running
averages stored in epoch-(epoch-avg).pt and epoch-<epoch>.pt. The model is built from the
params stored in the checkpoint: model flags are not needed (if given, they must agree).

Results go to <exp-dir>/<decoding-method>/: recogs-<test-set>-<suffix>.txt,
errs-<test-set>-<suffix>.txt and wer-summary-<test-set>-<suffix>.txt; WER and decode RTF of each
test set are logged at the end.
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.search.decode_main import get_decode_parser, run_decode  # noqa: E402
from icefall_lite.utils import AttributeDict  # noqa: E402

TEST_SETS = ("dev", "test-synth", "test-human")


def get_parser():
    parser = get_decode_parser(TEST_SETS, description=__doc__.splitlines()[0])
    parser.set_defaults(exp_dir="zipformer/exp", bpe_model="data/lang_bpe_128/bpe.model")
    return parser


def get_params() -> AttributeDict:
    """Fixed settings; the model's own come from the checkpoint."""
    return AttributeDict({"feature_dim": 80, "blank_id": 0})


def main() -> None:
    try:
        run_decode(get_parser(), sys.argv[1:], dataset_prefix="synth", defaults=get_params())
    except (ValueError, FileNotFoundError) as e:  # bad flags or missing files: one line
        sys.exit(f"{Path(__file__).name}: error: {e}")


if __name__ == "__main__":
    main()
