"""egs/librispeech/ASR/zipformer/train.py: icefall's defaults and flags, and its error lines."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO_ROOT / "egs" / "librispeech" / "ASR"


def _load_recipe(dataset: str):
    path = REPO_ROOT / "egs" / dataset / "ASR" / "zipformer" / "train.py"
    spec = importlib.util.spec_from_file_location(f"{dataset}_zipformer_train", path)
    module = importlib.util.module_from_spec(spec)
    # Importing it may set OMP_WAIT_POLICY; test/conftest.py puts it back after each test.
    spec.loader.exec_module(module)
    return module


def test_defaults_are_icefall_s():
    recipe = _load_recipe("librispeech")
    args = recipe.get_parser().parse_args([])
    assert (args.num_epochs, args.base_lr, args.lr_batches, args.lr_epochs) == (
        30,
        0.045,
        7500,
        3.5,
    )
    assert (args.model_size, args.decoder_dim, args.joiner_dim, args.context_size) == (
        "medium",
        512,
        512,
        2,
    )
    assert (args.prune_range, args.lm_scale, args.am_scale, args.simple_loss_scale) == (
        5,
        0.25,
        0.0,
        0.5,
    )
    assert (args.save_every_n, args.keep_last_k, args.average_period) == (4000, 30, 200)
    assert args.full_libri and str(args.bpe_model) == "data/lang_bpe_500/bpe.model"
    params = recipe.get_params()
    assert (params.warm_step if "warm_step" in params else args.warm_step) == 2000
    assert params.valid_interval == 3000


def test_the_two_recipes_differ_in_defaults_only():
    libri = _load_recipe("librispeech").get_parser().parse_args([])
    synth = _load_recipe("synth").get_parser().parse_args([])
    assert set(vars(synth)) == set(vars(libri)) - {"full_libri"}
    assert synth.model_size == "tiny"


def test_missing_cuts_are_a_one_line_error(tmp_path):
    bpe = tmp_path / "bpe.model"
    bpe.write_bytes(b"x")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [
            sys.executable,
            str(RECIPE_DIR / "zipformer" / "train.py"),
            "--bpe-model",
            str(bpe),
            "--manifest-dir",
            str(tmp_path),
            "--full-libri",
            "0",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--manifest-dir" in lines[0] and "librispeech_cuts_train-clean-100.jsonl.gz" in lines[0]
