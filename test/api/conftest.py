"""Tiny random Zipformer models (offline and causal, with a CTC head) and a BPE model, saved
as checkpoints and packages, plus a few sound files: the inputs of the API tests."""

import argparse
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from icefall_lite.api import ASRModel
from icefall_lite.checkpoint import save_checkpoint
from icefall_lite.data.tokenizer import train_bpe_model
from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.utils import AttributeDict

WORDS = "HELLO WORLD PLEASE ENTER YOUR NUMBER FOLLOWED BY THE POUND KEY GOOD BYE".split()
VOCAB = 32


def chirp(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    """A sweeping tone with a little noise: a random model gives it varied tokens."""
    t = np.arange(int(seconds * rate)) / rate
    f = 200 + 150 * np.sin(2 * np.pi * (0.5 + 0.2 * seed) * t)
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / rate)
    x += 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def lang(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("lang")
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, 6)) for _ in range(300)]
    (root / "text.txt").write_text("\n".join(lines) + "\n")
    bpe = train_bpe_model(root / "text.txt", root / "lang_bpe_32", vocab_size=VOCAB)
    return {"bpe_model": bpe, "tokens": bpe.parent / "tokens.txt"}


def tiny_params(causal: bool, use_ctc: bool = True, use_transducer: bool = True) -> AttributeDict:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    argv = ["--model-size", "tiny", "--causal", str(int(causal)), "--chunk-size", "16"]
    argv += ["--left-context-frames", "64", "--decoder-dim", "32", "--joiner-dim", "32"]
    argv += ["--use-ctc", str(int(use_ctc)), "--use-transducer", str(int(use_transducer))]
    params = AttributeDict(vars(parser.parse_args(argv)))
    params.update(vocab_size=VOCAB, blank_id=0, feature_dim=80)
    return params


def tiny_model(params: AttributeDict) -> torch.nn.Module:
    torch.manual_seed(3)
    model = build_model(params)
    with torch.no_grad():  # decisive heads: varied tokens from a random model
        if model.joiner is not None:
            model.joiner.encoder_proj.weight.mul_(10.0)
            model.joiner.output_linear.bias.zero_()
            model.joiner.output_linear.weight.mul_(3.0)
        if getattr(model, "ctc_output", None) is not None:
            model.ctc_output[1].weight.mul_(10.0)
    return model.eval()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict:
    """kind -> epoch-1.pt of a tiny model: 'offline', 'causal', 'ctc' (CTC only)."""
    root = tmp_path_factory.mktemp("checkpoints")
    out = {}
    for kind, params in (
        ("offline", tiny_params(False)),
        ("causal", tiny_params(True)),
        ("ctc", tiny_params(False, use_ctc=True, use_transducer=False)),
    ):
        exp = root / kind
        exp.mkdir()
        save_checkpoint(exp / "epoch-1.pt", tiny_model(params), params=dict(params))
        out[kind] = exp / "epoch-1.pt"
    return out


@pytest.fixture(scope="session")
def packages(checkpoints, lang, tmp_path_factory) -> dict:
    """kind -> a package file of that checkpoint."""
    root = tmp_path_factory.mktemp("packages")
    return {
        kind: ASRModel.from_checkpoint(path, lang["tokens"], lang["bpe_model"]).save_to(
            root / f"{kind}.icefall"
        )
        for kind, path in checkpoints.items()
    }


@pytest.fixture(scope="session")
def models(packages) -> dict:
    return {kind: ASRModel.restore_from(path) for kind, path in packages.items()}


@pytest.fixture(scope="session")
def wavs(tmp_path_factory) -> list:
    """Four 16 kHz mono files of 1.0 to 1.9 s."""
    root = tmp_path_factory.mktemp("wavs")
    paths = []
    for i, seconds in enumerate((1.0, 1.9, 1.3, 1.6)):
        path = root / f"w{i}.wav"
        sf.write(path, chirp(seconds, i), 16000)
        paths.append(path)
    return paths


@pytest.fixture()
def model_dir(packages, tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for kind, path in packages.items():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder
