"""The librispeech recipe's deployment scripts exist, are executable and explain their flags
(they share their code with the synth ones, tested end to end in test_export_synth.py)."""

import importlib.util
import os
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "librispeech" / "ASR" / "zipformer"
SCRIPTS = {
    "export.py": "--jit",
    "export-onnx.py": "--opset-version",
    "pretrained.py": "--checkpoint",
    "jit_pretrained.py": "--nn-model-filename",
    "onnx_pretrained.py": "--encoder-model-filename",
    "streaming_decode.py": "--num-decode-streams",
}


@pytest.mark.parametrize("script, flag", sorted(SCRIPTS.items()))
def test_script_help(script, flag):
    path = RECIPE / script
    assert os.access(path, os.X_OK), f"{path} is not executable"
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    spec = importlib.util.spec_from_file_location(
        "librispeech_" + path.stem.replace("-", "_"), path
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    help_text = module.get_parser().format_help()
    assert flag in help_text and "usage" in help_text.lower()
    assert "egs/librispeech/ASR" in module.__doc__
