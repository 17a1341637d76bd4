"""Bad input to decode.py and streaming_decode.py: each probe of issue #18 gets one line naming
the flag, file or cut, exit status 1, no traceback (and no score is written)."""

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    RECIPE,
    assert_one_line_error,
    decode_args,
    run_script,
    save_tiny_epochs,
    tiny_params,
)
from lhotse import CutSet


def _copy_exp(recipe_dir, tmp_path) -> Path:
    exp = tmp_path / "exp"
    shutil.copytree(recipe_dir["exp_dir"], exp)
    return exp


def _cuts(recipe_dir):
    return CutSet.from_file(Path(recipe_dir["manifest_dir"]) / "synth_cuts_dev.jsonl.gz").to_eager()


def _write_manifest(tmp_path, cuts) -> Path:
    manifest_dir = tmp_path / "fbank"
    manifest_dir.mkdir(exist_ok=True)
    CutSet.from_cuts(cuts).to_file(manifest_dir / "synth_cuts_dev.jsonl.gz")
    return manifest_dir


def _decode(recipe_dir, capsys, *extra, script="decode"):
    return run_script(script, decode_args(recipe_dir, *extra), capsys)


def test_truncated_checkpoint(recipe_dir, tmp_path, capsys):
    exp = _copy_exp(recipe_dir, tmp_path)
    data = (exp / "epoch-2.pt").read_bytes()
    (exp / "epoch-2.pt").write_bytes(data[: len(data) // 2])
    outcome = _decode(recipe_dir, capsys, "--exp-dir", str(exp))
    assert_one_line_error(outcome, "decode.py", "epoch-2.pt", "truncated")


def test_truncated_checkpoint_real_script(recipe_dir, tmp_path):
    """The same through the script's own process (its imports come from this checkout)."""
    exp = _copy_exp(recipe_dir, tmp_path)
    (exp / "epoch-2.pt").write_bytes((exp / "epoch-2.pt").read_bytes()[:1000])
    proc = subprocess.run(
        [
            sys.executable,
            str(RECIPE / "decode.py"),
            *decode_args(recipe_dir, "--exp-dir", str(exp)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("decode.py: error: ")
    assert "epoch-2.pt" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--max-duration", "-1"], "--max-duration must be > 0"),
        (["--max-duration", "0"], "--max-duration must be > 0"),
        (["--beam-size", "0", "--decoding-method", "beam_search"], "--beam-size must be >= 1"),
        (["--num-workers", "-2"], "--num-workers must be >= 0"),
        (["--decoding-method", "nope"], "invalid choice: 'nope'"),
        (["--epoch", "two"], "--epoch: invalid int value"),
    ],
)
def test_bad_flag_values(recipe_dir, capsys, flags, needle):
    assert_one_line_error(_decode(recipe_dir, capsys, *flags), "decode.py", needle)


def test_exp_dir_is_a_file(recipe_dir, tmp_path, capsys):
    not_a_dir = tmp_path / "exp"
    not_a_dir.write_text("")
    outcome = _decode(recipe_dir, capsys, "--exp-dir", str(not_a_dir))
    assert_one_line_error(outcome, "decode.py", "--exp-dir", "not a directory")


def test_epoch_1_avg_1_with_the_averaged_model_says_what_to_do(recipe_dir, capsys):
    outcome = _decode(recipe_dir, capsys, "--epoch", "1")
    assert_one_line_error(outcome, "decode.py", "epoch-0.pt", "--use-averaged-model 0")
    assert "cannot exist" in outcome.last_line


@pytest.mark.parametrize("averaged", ["0", "1"])
def test_averaging_checkpoints_of_different_sizes_names_the_file(
    tmp_path, recipe_dir, capsys, averaged
):
    exp = tmp_path / "exp"
    save_tiny_epochs(exp, tiny_params("--joiner-dim", "48"), [1])
    save_tiny_epochs(exp, tiny_params(), [2])
    flags = ["--exp-dir", str(exp), "--use-averaged-model", averaged]
    if averaged == "0":
        flags += ["--avg", "2"]
    outcome = _decode(recipe_dir, capsys, *flags)
    assert_one_line_error(outcome, "decode.py", "epoch-1.pt", "different sizes")


def test_cut_without_supervision_names_cut_and_file(recipe_dir, tmp_path, capsys):
    cuts = list(_cuts(recipe_dir))
    cuts[3].supervisions = []
    manifest_dir = _write_manifest(tmp_path, cuts)
    outcome = _decode(recipe_dir, capsys, "--manifest-dir", str(manifest_dir))
    assert_one_line_error(
        outcome, "decode.py", cuts[3].id, "synth_cuts_dev.jsonl.gz", "supervision"
    )
    assert not list(Path(recipe_dir["exp_dir"]).glob("greedy_search/wer-summary-dev-*epoch-2*"))


# mtime=0 and explicit ids: a gzip header carries the time it was made, and pytest-xdist requires
# every worker to collect the same test ids.
@pytest.mark.parametrize(
    "content",
    [b"this is not json\n", gzip.compress(b"{not json\n", mtime=0), b""],
    ids=["text", "gzip", "empty"],
)
def test_non_json_manifest_names_the_file(recipe_dir, tmp_path, capsys, content):
    manifest_dir = tmp_path / "fbank"
    manifest_dir.mkdir()
    (manifest_dir / "synth_cuts_dev.jsonl.gz").write_bytes(content)
    outcome = _decode(recipe_dir, capsys, "--manifest-dir", str(manifest_dir))
    if content == b"":  # an empty file is an empty test set: also an error, never a score
        assert_one_line_error(outcome, "decode.py", "no cuts")
    else:
        assert_one_line_error(outcome, "decode.py", "synth_cuts_dev.jsonl.gz", "cut manifest")


def test_missing_recording_with_on_the_fly_feats(recipe_dir, tmp_path, capsys):
    cuts = list(_cuts(recipe_dir))
    wav = tmp_path / "gone.wav"
    shutil.copy(cuts[2].recording.sources[0].source, wav)
    cuts[2].recording.sources[0].source = str(wav)
    manifest_dir = _write_manifest(tmp_path, cuts)
    wav.unlink()
    outcome = _decode(
        recipe_dir, capsys, "--manifest-dir", str(manifest_dir), "--on-the-fly-feats", "1"
    )
    assert_one_line_error(outcome, "decode.py", cuts[2].id, "gone.wav", "does not exist")


@pytest.fixture(scope="module")
def causal_exp(tmp_path_factory):
    exp = tmp_path_factory.mktemp("causal") / "exp"
    save_tiny_epochs(
        exp,
        tiny_params("--causal", "1", "--chunk-size", "16", "--left-context-frames", "64"),
        [1, 2],
    )
    return exp


def test_streaming_cut_without_supervision(recipe_dir, causal_exp, tmp_path, capsys):
    cuts = list(_cuts(recipe_dir))
    cuts[0].supervisions = []
    manifest_dir = _write_manifest(tmp_path, cuts)
    outcome = _decode(
        recipe_dir,
        capsys,
        "--exp-dir",
        str(causal_exp),
        "--manifest-dir",
        str(manifest_dir),
        "--use-averaged-model",
        "0",
        script="streaming_decode",
    )
    assert_one_line_error(outcome, "streaming_decode.py", cuts[0].id, "supervision")


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--decoding-method", "ctc_greedy_search"], "streaming supports"),
        (["--beam-size", "0", "--decoding-method", "modified_beam_search"], "--beam-size"),
        (["--max-duration", "-1"], "--max-duration must be > 0"),
        (["--num-decode-streams", "0"], "--num-decode-streams must be >= 1"),
    ],
)
def test_streaming_bad_flags(recipe_dir, causal_exp, capsys, flags, needle):
    outcome = _decode(
        recipe_dir,
        capsys,
        "--exp-dir",
        str(causal_exp),
        "--use-averaged-model",
        "0",
        *flags,
        script="streaming_decode",
    )
    assert_one_line_error(outcome, "streaming_decode.py", needle)


def test_streaming_truncated_checkpoint(recipe_dir, causal_exp, tmp_path, capsys):
    exp = tmp_path / "exp"
    shutil.copytree(causal_exp, exp)
    (exp / "epoch-2.pt").write_bytes((exp / "epoch-2.pt").read_bytes()[:5000])
    outcome = _decode(
        recipe_dir,
        capsys,
        "--exp-dir",
        str(exp),
        "--use-averaged-model",
        "0",
        script="streaming_decode",
    )
    assert_one_line_error(outcome, "streaming_decode.py", "epoch-2.pt")


def test_random_bytes_as_checkpoint_is_unreadable_not_unsafe(recipe_dir, tmp_path, capsys):
    """Not a zip archive and no pickled class named: 'cannot read', not 'refusing to load'."""
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "epoch-2.pt").write_bytes(bytes(range(256)) * 4)
    outcome = _decode(recipe_dir, capsys, "--exp-dir", str(exp), "--use-averaged-model", "0")
    assert_one_line_error(outcome, "decode.py", "epoch-2.pt", "cannot read checkpoint")
