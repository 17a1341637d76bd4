#!/usr/bin/env python3
"""Export a trained Zipformer transducer (synth) to pretrained.pt and TorchScript.

Usage, from egs/synth/ASR:

./zipformer/export.py --exp-dir ./zipformer/exp --tokens data/lang_bpe_128/tokens.txt \\
    --epoch 30 --avg 9 --jit 1

Writes <exp-dir>/pretrained.pt (weights + params, for ./zipformer/pretrained.py) and, with
--jit 1, <exp-dir>/jit_script.pt (for ./zipformer/jit_pretrained.py); for a model trained with
--causal 1 the TorchScript file is the chunk-wise streaming model
jit_script_chunk_<C>_left_<L>.pt (--chunk-size C --left-context-frames L, 50 Hz frames).

Checkpoints are chosen as in decode.py (--epoch/--iter/--avg/--use-averaged-model) and the
architecture is read from them.
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.export.main import get_export_parser, run_export  # noqa: E402
from icefall_lite.utils import AttributeDict  # noqa: E402


def get_parser():
    parser = get_export_parser(__doc__.splitlines()[0], onnx=False)
    parser.set_defaults(exp_dir="zipformer/exp", tokens="data/lang_bpe_128/tokens.txt")
    return parser


def get_params() -> AttributeDict:
    """Fixed settings; the model's own come from the checkpoint."""
    return AttributeDict({"feature_dim": 80, "blank_id": 0})


def main() -> None:
    run_export(get_parser(), sys.argv[1:], get_params())


if __name__ == "__main__":
    main()
