#!/usr/bin/env python3
"""Export a trained Zipformer transducer to pretrained.pt and TorchScript.

Usage, from egs/synth/ASR (from egs/librispeech/ASR, whose zipformer/export.py links here, the
same with data/lang_bpe_500; each folder's recipe_defaults.py holds its dataset's names):

./zipformer/export.py --exp-dir ./zipformer/exp --tokens data/lang_bpe_128/tokens.txt \\
    --bpe-model data/lang_bpe_128/bpe.model --epoch 30 --avg 9 --jit 1

Writes <exp-dir>/pretrained.pt (weights + params, for ./zipformer/pretrained.py), the one-file
model package <exp-dir>/model-epoch-30-avg-9.icefall (for ASRModel.restore_from and
python -m icefall_lite.transcribe --model) and, with
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

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.export import get_export_parser, run_export  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = get_export_parser(__doc__.splitlines()[0], onnx=False)
    parser.set_defaults(
        exp_dir="zipformer/exp",
        tokens=f"{RECIPE.LANG_DIR}/tokens.txt",
        bpe_model=f"{RECIPE.LANG_DIR}/bpe.model",
    )
    return parser


def main() -> None:
    def export(argv):
        run_export(get_parser(), argv, get_params())

    run_main(Path(__file__).name, export)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
