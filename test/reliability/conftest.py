"""Shared set-up of the reliability suite: a tiny recipe folder (model, BPE model, cuts) and a way
to run a recipe script's ``main()`` in this process, as its command line would, capturing the
exit status and stderr.

Every probe here asserts the error convention of ``icefall_lite/cli/errors.py``: a non-zero
exit, stderr ending in one line ``<script>: error: ...`` that names what is wrong, and no
traceback. Add a test here for each new failure mode found.
"""

import argparse
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs" / "synth" / "ASR" / "zipformer"
sys.path.insert(0, str(REPO / "test" / "recipes"))  # test_decode_synth's tiny recipe folder

from test_decode_synth import make_recipe_dir  # noqa: E402

from icefall_lite.checkpoint import save_checkpoint  # noqa: E402
from icefall_lite.models import add_model_arguments, build_model  # noqa: E402
from icefall_lite.utils import AttributeDict  # noqa: E402


@dataclass
class Outcome:
    """What a script run left: its exit status and what it wrote to stderr."""

    status: int
    stderr: str
    stdout: str = ""

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


_SCRIPTS: Dict[str, object] = {}


def load_script(name: str):
    """The recipe script ``egs/synth/ASR/zipformer/<name>.py`` as a module (loaded once)."""
    if name not in _SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"reliability_{name}", RECIPE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SCRIPTS[name] = module
    return _SCRIPTS[name]


def _drop_log_handlers() -> None:
    """Remove the console/file handlers a script's setup_logger left on the root logger (they
    hold the stream of an earlier test's capture); pytest's own handlers stay."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) in (logging.StreamHandler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()


def run_script(name: str, argv: Sequence[str], capsys) -> Outcome:
    """Run ``<name>.py`` ``argv`` through its ``main()`` (sys.argv patched) in this process."""
    module = load_script(name)
    _drop_log_handlers()
    capsys.readouterr()
    saved = sys.argv
    sys.argv = [f"{name}.py", *argv]
    try:
        module.main()
        status = 0
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved
        _drop_log_handlers()
    captured = capsys.readouterr()
    return Outcome(status=status, stderr=captured.err, stdout=captured.out)


def assert_one_line_error(outcome: Outcome, script: str, *needles: str) -> None:
    """Non-zero exit, the last stderr line is ``<script>: error: ...`` holding each needle, and
    no traceback anywhere."""
    assert outcome.status != 0, outcome.stderr
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.last_line.startswith(f"{script}: error: "), outcome.stderr
    for needle in needles:
        assert needle in outcome.last_line, (needle, outcome.last_line)
    print(f"[one-line] {outcome.last_line}")  # shown with pytest -s


def tiny_params(*argv: str, vocab_size: int = 32) -> AttributeDict:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    small = ["--model-size", "tiny", "--decoder-dim", "32", "--joiner-dim", "32"]
    params = AttributeDict(vars(parser.parse_args([*small, *argv])))
    params.update(vocab_size=vocab_size, blank_id=0, feature_dim=80, average_period=1)
    return params


def save_tiny_epochs(exp_dir: Path, params: AttributeDict, epochs: Sequence[int]) -> None:
    torch.manual_seed(0)
    model = build_model(params)
    for epoch in epochs:
        params.batch_idx_train = 10 * epoch
        save_checkpoint(exp_dir / f"epoch-{epoch}.pt", model, model_avg=model, params=params)


@pytest.fixture(scope="session")
def recipe_dir(tmp_path_factory) -> dict:
    """test_decode_synth's tiny recipe folder: epoch-1/2.pt, bpe.model, synth_cuts_dev."""
    torch.set_num_threads(1)
    return make_recipe_dir(tmp_path_factory.mktemp("reliability"), "synth", ["dev"])


def decode_args(d: dict, *extra: str) -> List[str]:
    return [
        "--exp-dir", str(d["exp_dir"]), "--bpe-model", str(d["bpe_model"]),
        "--manifest-dir", str(d["manifest_dir"]), "--num-workers", "0",
        "--max-duration", "3", "--epoch", "2", "--avg", "1", "--test-sets", "dev", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def pretrained_file(recipe_dir, tmp_path_factory) -> Path:
    """pretrained.pt of the tiny model, as export.py writes it."""
    from icefall_lite.checkpoint import read_checkpoint, stored_params

    checkpoint = read_checkpoint(recipe_dir["exp_dir"] / "epoch-2.pt")
    params = AttributeDict(stored_params(checkpoint))
    model = build_model(params)
    model.load_state_dict(checkpoint["model"])
    out = tmp_path_factory.mktemp("pretrained") / "pretrained.pt"
    save_checkpoint(out, model, params=dict(params))
    return out


@pytest.fixture(scope="session")
def tokens_file(recipe_dir) -> Path:
    """tokens.txt of the tiny BPE model."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(str(recipe_dir["bpe_model"]))
    path = Path(recipe_dir["bpe_model"]).parent / "tokens.txt"
    path.write_text("".join(f"{sp.id_to_piece(i)} {i}\n" for i in range(sp.get_piece_size())))
    return path


@pytest.fixture(scope="session")
def wav_file(recipe_dir) -> Path:
    return Path(recipe_dir["exp_dir"]).parents[1] / "audio" / "utt5.wav"


@pytest.fixture(autouse=True)
def _no_debug_env(monkeypatch):
    """The convention under test is the default one (no ICEFALL_LITE_DEBUG)."""
    monkeypatch.delenv("ICEFALL_LITE_DEBUG", raising=False)
