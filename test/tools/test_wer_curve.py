"""tools/wer_curve.py: WER of every checkpoint against training time, equal to decode.py's."""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from icefall_lite.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


decode_test = _load(REPO / "test" / "recipes" / "test_decode_synth.py", "decode_test_helpers")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("curve")
    torch.set_num_threads(1)
    d = decode_test.make_recipe_dir(root, "synth", ["dev", "test-human"])
    # Training clock: epoch-1 at 1.5 min, epoch-2 at 3 min; an old checkpoint has none.
    for epoch, seconds in ((1, 90.0), (2, 180.0)):
        path = d["exp_dir"] / f"epoch-{epoch}.pt"
        checkpoint = read_checkpoint(path)
        checkpoint["train_seconds"] = seconds
        torch.save(checkpoint, path)
    old = read_checkpoint(d["exp_dir"] / "epoch-1.pt")
    del old["train_seconds"]
    torch.save(old, d["exp_dir"] / "checkpoint-5.pt")
    return d


def run_curve(d, *extra):
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "wer_curve.py"), "--exp-dir", str(d["exp_dir"])]
        + ["--manifest-dir", str(d["manifest_dir"]), "--bpe-model", str(d["bpe_model"])]
        + ["--num-workers", "0", "--max-duration", "3", *extra],
        capture_output=True,
        text=True,
    )


def read_tsv(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_rows_per_checkpoint_match_decode_py(recipe):
    proc = run_curve(recipe, "--max-utts", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "checkpoint-5.pt: no train_seconds" in proc.stderr
    rows = read_tsv(recipe["exp_dir"] / "wer-vs-time.tsv")
    keys = {(r["checkpoint"], r["test_set"], r["method"]) for r in rows}
    assert keys == {
        (f"epoch-{e}.pt", s, m)
        for e in (1, 2)
        for s in ("dev", "test-human")
        for m in ("greedy_search", "ctc_greedy_search")
    }
    assert {r["train_minutes"] for r in rows} == {"1.50", "3.00"}
    assert {r["num_utts"] for r in rows} == {str(decode_test.NUM_CUTS)}

    # decode.py on the same checkpoint (as it is: --avg 1, no averaged model) gives the same WER.
    script = decode_test.load_recipe_script("synth")
    for method in ("greedy_search", "ctc_greedy_search"):
        args = decode_test.common_args(recipe, "--decoding-method", method)
        args += ["--use-averaged-model", "0", "--test-sets", "dev"]
        summary = script.run_decode(
            script.get_parser(), args, dataset_prefix="synth", defaults=script.get_params()
        )
        ours = [r for r in rows if r["checkpoint"] == "epoch-2.pt" and r["method"] == method]
        ours = [r for r in ours if r["test_set"] == "dev"]
        assert float(ours[0]["wer"]) == pytest.approx(summary["dev"][0], abs=0.01)

    # A second run decodes nothing new and keeps the rows as they are.
    again = run_curve(recipe, "--max-utts", "0")
    assert again.returncode == 0 and read_tsv(recipe["exp_dir"] / "wer-vs-time.tsv") == rows


def test_subset_size_is_recorded_and_bad_method_is_one_line(recipe):
    out = recipe["exp_dir"] / "subset.tsv"
    proc = run_curve(recipe, "--max-utts", "3", "--out", str(out), "--test-sets", "dev")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {r["num_utts"] for r in read_tsv(out)} == {"3"}
    bad = run_curve(recipe, "--decoding-methods", "greedy,ctc_greedy_search")
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("wer_curve.py: --decoding-methods")


def test_empty_experiment_folder_is_an_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "wer_curve.py"), "--exp-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "no checkpoint-*.pt or epoch-*.pt" in proc.stderr
    assert "Traceback" not in proc.stderr
