"""Bad input to pretrained.py, jit_pretrained.py and onnx_pretrained.py (issue #18's probes):
one line naming the flag or file, exit status 1, no traceback; exported files are 0644 and a
truncated wav is transcribed with a warning."""

import logging
import os

import numpy as np
import pytest
import soundfile as sf
from conftest import assert_one_line_error, run_script, save_tiny_epochs, tiny_params

from icefall_lite.audio import read_audio, wav_truncation
from icefall_lite.checkpoint import read_checkpoint, stored_params
from icefall_lite.models import build_model
from icefall_lite.utils import AttributeDict


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def _expected_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _common(tokens_file, wav_file, *extra):
    return ["--tokens", str(tokens_file), *extra, str(wav_file)]


# ------------------------------------------------------------------------- pretrained.py


def test_pretrained_transcribes(pretrained_file, tokens_file, wav_file, capsys):
    outcome = run_script(
        "pretrained",
        ["--checkpoint", str(pretrained_file), *_common(tokens_file, wav_file)],
        capsys,
    )
    assert outcome.status == 0, outcome.stderr


def test_pretrained_truncated_checkpoint(pretrained_file, tokens_file, wav_file, tmp_path, capsys):
    bad = tmp_path / "pretrained.pt"
    bad.write_bytes(pretrained_file.read_bytes()[:3000])
    outcome = run_script(
        "pretrained", ["--checkpoint", str(bad), *_common(tokens_file, wav_file)], capsys
    )
    assert_one_line_error(outcome, "pretrained.py", str(bad), "truncated")


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--sample-rate", "8000"], "--sample-rate 8000"),
        (["--beam-size", "0", "--decoding-method", "modified_beam_search"], "--beam-size"),
        (["--num-threads", "0"], "--num-threads must be >= 1"),
        (["--max-sym-per-frame", "0"], "--max-sym-per-frame"),
    ],
)
def test_pretrained_bad_flags(pretrained_file, tokens_file, wav_file, capsys, flags, needle):
    outcome = run_script(
        "pretrained",
        ["--checkpoint", str(pretrained_file), *_common(tokens_file, wav_file, *flags)],
        capsys,
    )
    assert_one_line_error(outcome, "pretrained.py", needle)


def test_pretrained_missing_tokens(pretrained_file, wav_file, tmp_path, capsys):
    outcome = run_script(
        "pretrained",
        ["--checkpoint", str(pretrained_file), "--tokens", str(tmp_path / "no.txt"), str(wav_file)],
        capsys,
    )
    assert_one_line_error(outcome, "pretrained.py", "--tokens", "no.txt")


def test_truncated_wav_is_transcribed_with_a_warning(wav_file, tmp_path, caplog):
    data = wav_file.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert wav_truncation(wav_file) is None
    declared, present = wav_truncation(cut)
    assert present < declared
    with caplog.at_level(logging.WARNING):
        wave = read_audio(cut)
    assert wave.numel() > 0
    assert any("truncated WAV" in r.message and str(cut) in r.message for r in caplog.records)


def test_flac_and_complete_wav_give_no_truncation_warning(tmp_path):
    x = np.zeros(1600, dtype=np.float32)
    sf.write(tmp_path / "a.flac", x, 16000)
    sf.write(tmp_path / "a.wav", x, 16000)
    assert wav_truncation(tmp_path / "a.flac") is None
    assert wav_truncation(tmp_path / "a.wav") is None


# ------------------------------------------------------------------------- jit_pretrained.py


@pytest.fixture(scope="module")
def streaming_jit(tmp_path_factory):
    """A chunk-wise streaming TorchScript export of a tiny causal model."""
    from icefall_lite.export.torchscript import export_jit_script

    exp = tmp_path_factory.mktemp("jit")
    params = tiny_params("--causal", "1", "--chunk-size", "16", "--left-context-frames", "64")
    save_tiny_epochs(exp, params, [1])
    checkpoint = read_checkpoint(exp / "epoch-1.pt")
    model = build_model(AttributeDict(stored_params(checkpoint)))
    model.load_state_dict(checkpoint["model"])
    out = exp / "jit_script_chunk_16_left_64.pt"
    export_jit_script(model, out, causal=True, chunk_size=16, left_context_frames=64)
    return out


def test_exported_jit_file_is_world_readable(streaming_jit):
    assert _mode(streaming_jit) == _expected_mode()


@pytest.mark.parametrize("method", ["ctc_greedy_search", "ctc_prefix_beam_search", "beam_search"])
def test_jit_streaming_export_refuses_other_methods(
    streaming_jit, tokens_file, wav_file, capsys, method
):
    outcome = run_script(
        "jit_pretrained",
        [
            "--nn-model-filename",
            str(streaming_jit),
            *_common(tokens_file, wav_file, "--decoding-method", method),
        ],
        capsys,
    )
    assert_one_line_error(outcome, "jit_pretrained.py", method, "streaming export")


def test_jit_truncated_or_foreign_file(
    streaming_jit, pretrained_file, tokens_file, wav_file, tmp_path, capsys
):
    bad = tmp_path / "jit.pt"
    bad.write_bytes(streaming_jit.read_bytes()[:4000])
    for path in (bad, pretrained_file):
        outcome = run_script(
            "jit_pretrained",
            ["--nn-model-filename", str(path), *_common(tokens_file, wav_file)],
            capsys,
        )
        assert_one_line_error(outcome, "jit_pretrained.py", str(path), "TorchScript")


def test_jit_bad_flags(streaming_jit, tokens_file, wav_file, capsys):
    for flags, needle in (
        (["--sample-rate", "8000"], "--sample-rate"),
        (["--beam-size", "0"], "--beam-size"),
    ):
        outcome = run_script(
            "jit_pretrained",
            ["--nn-model-filename", str(streaming_jit), *_common(tokens_file, wav_file, *flags)],
            capsys,
        )
        assert_one_line_error(outcome, "jit_pretrained.py", needle)


# ------------------------------------------------------------------------- onnx_pretrained.py


def _fake_onnx(path, meta):
    """A one-node ONNX file carrying an export's metadata (enough for the role checks)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    from icefall_lite.export.onnx import _atomic_onnx_save

    _atomic_onnx_save(model, path)
    onnx.checker.check_model(str(path))
    return path


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    return {
        "encoder": _fake_onnx(d / "encoder.onnx", {"model_type": "zipformer2"}),
        "decoder": _fake_onnx(d / "decoder.onnx", {"context_size": "2", "vocab_size": "32"}),
        "joiner": _fake_onnx(d / "joiner.onnx", {"joiner_dim": "32"}),
    }


def _onnx_args(files, tokens_file, wav_file, *extra):
    return [
        f"--{part}-model-filename={files[part]}" for part in ("encoder", "decoder", "joiner")
    ] + _common(tokens_file, wav_file, *extra)


def test_onnx_files_are_written_world_readable(onnx_files):
    assert {_mode(p) for p in onnx_files.values()} == {_expected_mode()}


@pytest.mark.parametrize(
    "swap", [("encoder", "decoder"), ("decoder", "joiner"), ("joiner", "encoder")]
)
def test_onnx_swapped_files_name_the_flag(onnx_files, tokens_file, wav_file, capsys, swap):
    files = dict(onnx_files)
    files[swap[0]], files[swap[1]] = files[swap[1]], files[swap[0]]
    outcome = run_script("onnx_pretrained", _onnx_args(files, tokens_file, wav_file), capsys)
    first, other = sorted(swap, key=["encoder", "decoder", "joiner"].index)  # checked in order
    assert_one_line_error(
        outcome, "onnx_pretrained.py", f"--{first}-model-filename", f"the {other} file", "swapped"
    )


def test_onnx_truncated_file(onnx_files, tokens_file, wav_file, tmp_path, capsys):
    files = dict(onnx_files)
    files["joiner"] = tmp_path / "joiner.onnx"
    files["joiner"].write_bytes(onnx_files["joiner"].read_bytes()[:20])
    outcome = run_script("onnx_pretrained", _onnx_args(files, tokens_file, wav_file), capsys)
    assert_one_line_error(outcome, "onnx_pretrained.py", "--joiner-model-filename")


def test_onnx_ctc_method_is_refused(onnx_files, tokens_file, wav_file, capsys):
    outcome = run_script(
        "onnx_pretrained",
        _onnx_args(onnx_files, tokens_file, wav_file, "--decoding-method", "ctc_greedy_search"),
        capsys,
    )
    assert_one_line_error(outcome, "onnx_pretrained.py", "ctc_greedy_search", "pretrained.py")


def test_pretrained_pt_from_export_is_world_readable(pretrained_file):
    assert _mode(pretrained_file) == _expected_mode()


@pytest.mark.parametrize("script", ["export", "export-onnx"])
def test_export_truncated_checkpoint(recipe_dir, tokens_file, tmp_path, capsys, script):
    exp = tmp_path / "exp"
    exp.mkdir()
    data = (recipe_dir["exp_dir"] / "epoch-2.pt").read_bytes()
    (exp / "epoch-2.pt").write_bytes(data[: len(data) // 3])
    outcome = run_script(
        script,
        [
            "--exp-dir",
            str(exp),
            "--tokens",
            str(tokens_file),
            "--epoch",
            "2",
            "--avg",
            "1",
            "--use-averaged-model",
            "0",
        ],
        capsys,
    )
    assert_one_line_error(outcome, f"{script}.py", "epoch-2.pt", "truncated")
    assert sorted(p.name for p in exp.iterdir()) == ["epoch-2.pt"]  # nothing half-written
