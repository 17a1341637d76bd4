"""tools/run_synth.sh against a fake recipe tree: stage selection, missing stages, failures,
the causal / non-causal paths of streaming and export, and the WER table."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "run_synth.sh"

# A stand-in for a recipe script: records its argv, then does what its name and FAKE_* say.
# train copies real (tiny) checkpoints made by the tests, so run_synth.sh's causal check reads
# them as it reads real ones; decode scripts write wer-summary files in decode.py's layout, with
# a WER derived from the method and test set so the table can be checked row by row.
FAKE_SCRIPT = """#!/usr/bin/env python3
import os, sys
from pathlib import Path
name = Path(sys.argv[0]).stem
argv = sys.argv[1:]
with open("calls.txt", "a") as f:
    f.write(name + " " + " ".join(argv) + "\\n")
def arg(flag, default=None):
    return argv[argv.index(flag) + 1] if flag in argv else default
if name == os.environ.get("FAKE_FAIL"):
    sys.exit(3)
# The lstm_transducer scripts' own default experiment folder (stage 8 passes no --exp-dir).
exp = Path(arg("--exp-dir", "lstm_transducer/exp" if "lstm_transducer" in sys.argv[0] else "."))
if name == "train":
    import shutil
    exp.mkdir(parents=True, exist_ok=True)
    causal = os.environ.get("FAKE_CAUSAL", "1")
    ctc = "-ctc" if os.environ.get("FAKE_CTC") == "1" else ""
    made = Path(os.environ["FAKE_CHECKPOINTS"]) / f"causal-{causal}{ctc}"
    for e in range(1, int(os.environ.get("FAKE_EPOCHS", "3")) + 1):
        shutil.copy(made, exp / f"epoch-{e}.pt")
if name in ("decode", "streaming_decode"):
    method = arg("--decoding-method")
    out = exp / method if name == "decode" else exp / "streaming" / method
    out.mkdir(parents=True, exist_ok=True)
    suffix = f"epoch-{arg('--epoch')}_avg-{arg('--avg')}"
    suffix += f"_chunk-{arg('--chunk-size')}_left-context-{arg('--left-context-frames')}"
    for i, test_set in enumerate(("dev", "test-synth", "test-human")):
        wer = {"decode": 10, "streaming_decode": 20}[name] + (method != "greedy_search") + i / 10
        summary = out / f"wer-summary-{test_set}-{suffix}_{method}.txt"
        summary.write_text(f"settings\\tWER\\n{method}\\t{wer:.2f}\\n")
if name == "export-onnx":
    tag = f"epoch-{arg('--epoch')}-avg-{arg('--avg')}"
    encoder_tag = tag
    if "--chunk-size" in argv:
        encoder_tag += f"-chunk-{arg('--chunk-size')}-left-{arg('--left-context-frames')}"
    for part, t in (("encoder", encoder_tag), ("decoder", tag), ("joiner", tag)):
        (exp / f"{part}-{t}.onnx").write_text("x")
        (exp / f"{part}-{t}.int8.onnx").write_text("x")
    (exp / "tokens.txt").write_text("<blk> 0")
if name == "onnx_pretrained":
    for flag in ("--encoder-model-filename", "--decoder-model-filename", "--joiner-model-filename"):
        assert Path(arg(flag)).is_file(), arg(flag)
    for wav in [a for a in argv if a.endswith(".wav")]:
        print(f"{wav}:\\nFAKE TRANSCRIPT\\n")
"""

ALL_SCRIPTS = [
    "prepare.sh",
    "zipformer/train.py",
    "zipformer/decode.py",
    "zipformer/streaming_decode.py",
    "zipformer/export.py",
    "zipformer/export-onnx.py",
    "zipformer/onnx_pretrained.py",
]
HUMAN_WAVS = [f"download/asterisk/test-human-{word}.wav" for word in ("a", "b", "c", "d")]


def make_tree(tmp_path: Path, scripts: list[str], human_audio: bool = True) -> Path:
    """A repo-shaped folder with tools/run_synth.sh, the real icefall_lite, the given recipe
    scripts and (``human_audio``) a test-human manifest whose wav files exist."""
    (tmp_path / "tools").mkdir()
    shutil.copy(SCRIPT, tmp_path / "tools" / "run_synth.sh")
    (tmp_path / "icefall_lite").symlink_to(REPO_ROOT / "icefall_lite")
    recipe = tmp_path / "egs" / "synth" / "ASR"
    (recipe / "zipformer").mkdir(parents=True)
    # run_synth.sh reads the recipe's batch size from it (the default world size splits it).
    defaults = REPO_ROOT / "egs" / "synth" / "ASR" / "zipformer" / "recipe_defaults.py"
    shutil.copy(defaults, recipe / "zipformer" / "recipe_defaults.py")
    for name in scripts:
        path = recipe / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "prepare.sh":
            path.write_text('#!/usr/bin/env bash\necho "prepare $*" >> calls.txt\n')
        else:
            path.write_text(FAKE_SCRIPT)
        path.chmod(0o755)
    if human_audio:
        manifests = recipe / "data" / "manifests"
        manifests.mkdir(parents=True)
        with gzip.open(manifests / "synth_recordings_test-human.jsonl.gz", "wt") as f:
            for wav in HUMAN_WAVS:
                (recipe / wav).parent.mkdir(parents=True, exist_ok=True)
                (recipe / wav).write_bytes(b"RIFF")
                source = {"type": "file", "channels": [0], "source": wav}
                f.write(json.dumps({"id": Path(wav).stem, "sources": [source]}) + "\n")
    return tmp_path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """causal-1 and causal-0: checkpoints whose stored params say --causal 1 / 0, and
    causal-1-ctc, which also says --use-ctc 1 (made here, where torch is loaded already, rather
    than in each fake train.py)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    for causal in (0, 1):
        torch.save({"model": {}, "causal": bool(causal)}, folder / f"causal-{causal}")
    torch.save({"model": {}, "causal": True, "use_ctc": True}, folder / "causal-1-ctc")
    return folder


@pytest.fixture(autouse=True)
def _fake_checkpoints(checkpoints: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CHECKPOINTS", str(checkpoints))


def run(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    # The fake venv is the interpreter running the tests: run_synth.sh only sources bin/activate.
    venv = Path(sys.prefix)
    full_env = {**os.environ, "VENV": str(venv), **env}
    return subprocess.run(
        ["bash", str(root / "tools" / "run_synth.sh"), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def calls(root: Path) -> list[str]:
    path = root / "egs" / "synth" / "ASR" / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def table_rows(stdout: str) -> list[list[str]]:
    """The WER table's rows as [method, test set, WER, settings]; a method's later rows have ''
    for the method, as printed."""
    block = stdout[stdout.index("==> stage 7: results") :]
    rows = [line.split("|") for line in block.splitlines() if line.count("|") == 3]
    return [[cell.strip() for cell in row] for row in rows]


@pytest.fixture(autouse=True)
def _need_venv() -> None:
    if not (Path(sys.prefix) / "bin" / "activate").exists():
        pytest.skip("tests must run inside a virtual environment")


def test_missing_stages_are_reported_and_skipped(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["prepare.sh"])
    proc = run(root, "--stage", "1")
    assert proc.returncode == 0, proc.stderr
    assert "prepare" in calls(root)[0]
    out = proc.stdout
    assert "stage 2 train not available yet: egs/synth/ASR/zipformer/train.py missing" in out
    assert "zipformer/decode.py missing" in out
    assert "zipformer/streaming_decode.py missing" in out
    assert "zipformer/export.py missing" in out
    assert "none yet: decode has not written any wer-summary" in out


def test_full_causal_run(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ALL_SCRIPTS)
    proc = run(root, "--stage", "1", "--num-epochs", "3", "--avg", "5", FAKE_EPOCHS="3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = calls(root)
    assert [line.split()[0] for line in lines] == [
        "prepare",
        "train",
        "decode",
        "decode",
        "streaming_decode",
        "export",
        "export-onnx",
        "onnx_pretrained",
    ]
    train, greedy, beam, streaming, export, export_onnx, onnx = lines[1:]
    assert "--num-epochs 3" in train
    # avg is capped below the newest epoch so the running-average model has a start checkpoint.
    for line in (greedy, beam, streaming, export, export_onnx):
        assert "--epoch 3 --avg 2" in line
    for line in (greedy, beam):
        assert "--chunk-size -1 --left-context-frames -1" in line
    assert "--decoding-method greedy_search" in greedy
    assert "--decoding-method modified_beam_search --beam-size 4" in beam
    assert "--chunk-size 16 --left-context-frames 128" in streaming
    assert "--decoding-method greedy_search" in streaming
    assert "--jit 1" in export
    for line in (export, export_onnx):
        assert "--chunk-size 16 --left-context-frames 128" in line
    # The streaming ONNX encoder, the first three test-human recordings of the manifest.
    assert (
        "--encoder-model-filename zipformer/exp/encoder-epoch-3-avg-2-chunk-16-left-128.onnx"
        in onnx
    )
    assert "--decoder-model-filename zipformer/exp/decoder-epoch-3-avg-2.onnx" in onnx
    assert onnx.split()[-3:] == HUMAN_WAVS[:3]
    assert f"{HUMAN_WAVS[0]}:\nFAKE TRANSCRIPT" in proc.stdout

    rows = table_rows(proc.stdout)
    assert rows[0] == ["method", "test set", "WER", "settings"]
    expected = []
    for method, base in (
        ("greedy_search", 10),
        ("modified_beam_search", 11),
        ("streaming/greedy_search", 20),
    ):
        context = "full context" if base < 20 else "chunk 16 left 128"
        for i, test_set in sorted(
            enumerate(("dev", "test-synth", "test-human")), key=lambda x: x[1]
        ):
            label = method if test_set == "dev" else ""
            expected.append([label, test_set, f"{base + i / 10:.2f}", f"epoch-3_avg-2, {context}"])
    assert rows[1:] == expected
    assert re.search(r"stage 7 results .* 9 WER result\(s\)", proc.stdout)


@pytest.mark.parametrize(
    "cores, args, expected, absent",
    [
        # 2 cores, no GPU: 2 one-thread ranks, each with half of the recipe's 30 s batch.
        ("2", [], "--world-size 2 --global-batch-size 30", "--max-duration"),
        # One core: one process, the recipe's own batch.
        ("1", [], None, "--world-size"),
        # What the user asks for wins.
        ("2", ["--world-size", "1"], "--world-size 1", "--global-batch-size"),
        ("2", ["--max-duration", "20"], "--world-size 2 --max-duration 20", "--global-batch"),
    ],
)
def test_default_world_size_splits_the_batch_over_the_cores(
    tmp_path: Path, cores: str, args: list[str], expected: str, absent: str
) -> None:
    root = make_tree(tmp_path, ["zipformer/train.py"])
    # nproc counts OMP_NUM_THREADS as the cores the job may use; no GPU is visible.
    proc = run(
        root,
        "--stage",
        "2",
        "--stop-stage",
        "2",
        *args,
        OMP_NUM_THREADS=cores,
        CUDA_VISIBLE_DEVICES="",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (train,) = calls(root)
    if expected is not None:
        assert expected in train
    assert absent not in train


def test_non_causal_model_skips_streaming_and_exports_offline(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ALL_SCRIPTS)
    proc = run(root, "--stage", "2", FAKE_EPOCHS="2", FAKE_CAUSAL="0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = calls(root)
    names = [line.split()[0] for line in lines]
    assert names == ["train", "decode", "decode", "export", "export-onnx", "onnx_pretrained"]
    assert "stage 4 streaming skipped: zipformer/exp/epoch-2.pt was trained with --causal 0" in (
        proc.stdout
    )
    assert re.search(r"stage 4 streaming .*skipped: model not causal", proc.stdout)
    export, export_onnx, onnx = lines[3:]
    # The default --avg 2 needs a start epoch before the window: with 2 epochs it falls back to
    # the newest epoch as it is.
    assert "--epoch 2 --avg 1 --use-averaged-model 0" in export and "--chunk-size" not in export
    assert "--chunk-size" not in export_onnx
    assert "--encoder-model-filename zipformer/exp/encoder-epoch-2-avg-1.onnx" in onnx
    assert "streaming/greedy_search" not in proc.stdout


def test_model_with_a_ctc_head_is_also_decoded_with_ctc_greedy_search(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ALL_SCRIPTS)
    proc = run(root, "--stage", "2", "--stop-stage", "3", FAKE_EPOCHS="2", FAKE_CTC="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    decodes = [line for line in calls(root) if line.startswith("decode ")]
    methods = [line.split("--decoding-method ")[1].split()[0] for line in decodes]
    assert methods == ["greedy_search", "modified_beam_search", "ctc_greedy_search"]
    assert "--chunk-size -1 --left-context-frames -1" in decodes[2]
    assert re.search(r"stage 3 decode .*, ctc_greedy_search \(full context\)", proc.stdout)


LSTM_SCRIPTS = [
    f"lstm_transducer/{name}"
    for name in (
        "train.py",
        "dump_mel_stats.py",
        "decode.py",
        "streaming_decode.py",
        "export.py",
        "export-onnx.py",
    )
]


@pytest.mark.parametrize(
    "ctc, methods",
    [
        ("1", ["greedy_search", "modified_beam_search", "ctc_greedy_search"]),
        ("0", ["greedy_search", "modified_beam_search"]),
    ],
)
def test_lstm_stage_decodes_with_the_ctc_head_when_the_model_has_one(
    tmp_path: Path, ctc: str, methods: list
) -> None:
    root = make_tree(tmp_path, ALL_SCRIPTS + LSTM_SCRIPTS)
    proc = run(root, "--stage", "8", "--stop-stage", "8", FAKE_EPOCHS="2", FAKE_CTC=ctc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = [line.split()[0] for line in calls(root)]
    assert names[:2] == ["train", "dump_mel_stats"]
    decodes = [line for line in calls(root) if line.startswith("decode ")]
    assert [line.split("--decoding-method ")[1].split()[0] for line in decodes] == methods
    for line in decodes:
        assert "--epoch 2 --avg 1 --use-averaged-model 0 --use-ema 1" in line
    assert names.count("streaming_decode") == 2 and "export-onnx" in names
    assert re.search(r"stage 8 lstm .*epoch 2 \(EMA\)", proc.stdout)


def test_export_without_test_human_audio_skips_the_demo(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ALL_SCRIPTS, human_audio=False)
    proc = run(root, "--stage", "2", "--stop-stage", "5", FAKE_EPOCHS="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "onnx_pretrained" not in [line.split()[0] for line in calls(root)]
    assert "skipping the ONNX transcription demo" in proc.stdout


def test_single_epoch_uses_plain_checkpoint(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["zipformer/train.py", "zipformer/decode.py"])
    proc = run(root, "--stage", "2", "--stop-stage", "3", FAKE_EPOCHS="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    decode = calls(root)[1]
    assert "--epoch 1 --avg 1 --use-averaged-model 0" in decode


def test_default_average_is_the_last_two_epochs(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["zipformer/train.py", "zipformer/decode.py"])
    proc = run(root, "--stage", "2", "--stop-stage", "3", FAKE_EPOCHS="4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    decode = calls(root)[1]
    assert "--epoch 4 --avg 2 " in decode and "--use-averaged-model" not in decode


def test_stop_stage_limits_the_run(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["prepare.sh", "zipformer/train.py"])
    proc = run(root, "--stage", "1", "--stop-stage", "1")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in calls(root)] == ["prepare"]
    assert "stage 2" not in proc.stdout


@pytest.mark.parametrize("failing, stage", [("train", "2 train"), ("export-onnx", "5 export")])
def test_failing_stage_stops_with_its_name(tmp_path: Path, failing: str, stage: str) -> None:
    root = make_tree(tmp_path, ALL_SCRIPTS)
    proc = run(root, "--stage", "2", FAKE_FAIL=failing, FAKE_EPOCHS="1")
    assert proc.returncode != 0
    assert f"FAILED in stage '{stage}'" in proc.stderr
    names = [line.split()[0] for line in calls(root)]
    assert names[-1] == failing
    assert "==> stage 7" not in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stage", "x"], "--stage expects a non-negative integer"),
        (["--avg"], "--avg needs a value"),
        (["--bogus"], "unknown option '--bogus'"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, args: list[str], message: str) -> None:
    root = make_tree(tmp_path, [])
    proc = run(root, *args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_results_table_tells_beam_and_lm_rows_apart(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ALL_SCRIPTS)
    out = root / "egs" / "synth" / "ASR" / "zipformer" / "exp" / "ctc_prefix_beam_search"
    out.mkdir(parents=True)
    stem = "wer-summary-dev-epoch-6_avg-2__ctc_prefix_beam_search__beam-size-4"
    lm = "_lm-ngram-scale-0.5-wib-1.0"
    for name, wer in (
        (f"{stem}_use-averaged-model", "44.57"),
        (f"{stem}{lm}_use-averaged-model", "36.95"),
    ):
        (out / f"{name}.txt").write_text(f"settings\tWER\nx\t{wer}\n")
    proc = run(root, "--stage", "7", "--stop-stage", "7")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "| dev" in line]
    assert len(rows) == 2, proc.stdout
    plain = "epoch-6_avg-2, beam 4"
    assert any("44.57" in r and r.rstrip().endswith(plain) for r in rows), rows
    assert any("36.95" in r and "beam 4, + ngram LM 0.5, bonus 1.0" in r for r in rows), rows
