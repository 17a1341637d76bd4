"""The librispeech recipe's deployment scripts exist, are executable and explain their flags
(they share their code with the synth ones, tested end to end in test_export_synth.py)."""

import os
import subprocess
import sys
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
    proc = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert flag in proc.stdout and "usage" in proc.stdout.lower()
