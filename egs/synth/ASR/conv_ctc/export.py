#!/usr/bin/env python3
"""Export a trained Jasper/QuartzNet CTC model to pretrained.pt, TorchScript and ONNX.

Usage, from egs/synth/ASR:

./conv_ctc/export.py --exp-dir ./conv_ctc/exp --tokens data/lang_bpe_128/tokens.txt \\
    --epoch 6 --avg 2 --jit 1 --onnx 1

Writes <exp-dir>/pretrained.pt (weights + params, for ./conv_ctc/pretrained.py) and the one-file
model package <exp-dir>/model-epoch-6-avg-2.icefall (for ASRModel.restore_from); with --jit 1
<exp-dir>/jit_script.pt and with --onnx 1 <exp-dir>/ctc-epoch-6-avg-2.onnx plus tokens.txt:
each maps (N, T, 80) fbank and (N,) lengths to (N, T', vocab) CTC log-probabilities and (N,)
lengths (icefall_lite/export/ctc.py), which onnxruntime runs and the CTC searches decode;
sherpa-onnx loads it as an icefall CTC model:
OfflineRecognizer.from_zipformer_ctc(model=..., tokens=...).

Checkpoints are chosen as in decode.py (--epoch/--iter/--avg/--use-averaged-model) and the
architecture is read from them.
"""

import sys
from pathlib import Path

# Make icefall_lite importable when the repository is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from icefall_lite.cli.checkpoints import inference_params as get_params  # noqa: E402
from icefall_lite.cli.errors import run_main  # noqa: E402
from icefall_lite.cli.export import get_ctc_export_parser, run_export_ctc  # noqa: E402
from icefall_lite.cli.recipe import load_recipe_defaults  # noqa: E402
from icefall_lite.models.conv_ctc import add_conv_ctc_arguments  # noqa: E402

RECIPE = load_recipe_defaults(__file__)


def get_parser():
    parser = get_ctc_export_parser(__doc__.splitlines()[0], add_conv_ctc_arguments)
    parser.set_defaults(exp_dir="conv_ctc/exp", tokens=f"{RECIPE.LANG_DIR}/tokens.txt")
    return parser


def main() -> None:
    def export(argv):
        run_export_ctc(get_parser(), argv, get_params())

    run_main(Path(__file__).name, export)  # bad input: one line (--debug: traceback)


if __name__ == "__main__":
    main()
