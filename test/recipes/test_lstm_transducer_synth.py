"""egs/synth/ASR/lstm_transducer end to end on the tiny made-up corpus of test_train_synth:
one-line errors (fast); exact resume after SIGKILL with the EMA and the warm-up/hold/decay
schedule, then decode (greedy, beam), mel statistics, chunk-wise streaming with both
normalisations, export (--jit 1, ONNX), the pretrained scripts and the predictions dump (slow).
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_train_synth import _env, _load, corpus  # noqa: F401 (corpus is a fixture)

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "egs" / "synth" / "ASR" / "lstm_transducer"


def _cmd(script: str, *args: str) -> list:
    return [sys.executable, str(RECIPE / script), *args]


def _train_args(corpus: Path, exp_dir: Path, *extra: str) -> list:  # noqa: F811
    return [
        "--exp-dir", str(exp_dir),
        "--manifest-dir", str(corpus / "data" / "fbank"),
        "--bpe-model", str(corpus / "data" / "lang_bpe_30" / "bpe.model"),
        "--encoder-hidden-dim", "32", "--pred-net-dim", "16", "--joint-dim", "16",
        "--max-duration", "8", "--num-buckets", "2", "--num-workers", "0",
        "--num-epochs", "2", "--save-every-n", "2", "--average-period", "1",
        "--warmup-steps", "2", "--hold-steps", "2", "--half-life-steps", "3",
        "--ema", "0.9", "--tensorboard", "0",
        *extra,
    ]  # fmt: skip


def _run(cmd: list, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_global_batch_that_does_not_divide_is_one_line(corpus, tmp_path):  # noqa: F811
    args = _train_args(corpus, tmp_path / "exp", "--global-batch-size", "100", "--accum-grad", "3")
    result = subprocess.run(
        _cmd("train.py", *args), cwd=corpus, env=_env(), capture_output=True, text=True
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("train.py: error: --global-batch-size 100 is not divisible by")
    assert "--accum-grad 3" in lines[0] and "world size 1" in lines[0]


def _assert_same(a: dict, b: dict) -> None:
    assert a["batch_idx_train"] == b["batch_idx_train"]
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert a["ema_state"]["decay"] == b["ema_state"]["decay"]
    for name in a["ema_state"]["model"]:
        assert torch.equal(a["ema_state"]["model"][name], b["ema_state"]["model"][name]), name
    assert a["scheduler"] == b["scheduler"]


@pytest.mark.slow
def test_lstm_recipe_end_to_end(corpus, tmp_path):  # noqa: F811
    full_dir = tmp_path / "full"
    _run(_cmd("train.py", *_train_args(corpus, full_dir)), corpus)
    full = _load(full_dir / "epoch-2.pt")
    assert full["model_family"] == "lstm_transducer" and "ema_state" in full

    # SIGKILL after the first mid-epoch checkpoint, resume with --start-batch: bit-identical,
    # EMA weights and schedule included.
    broken_dir = tmp_path / "broken"
    process = subprocess.Popen(
        _cmd("train.py", *_train_args(corpus, broken_dir)),
        cwd=corpus,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 600
    while not (broken_dir / "checkpoint-2.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    last = max(int(p.stem.split("-")[1]) for p in broken_dir.glob("checkpoint-*.pt"))
    resumed = _run(
        _cmd("train.py", *_train_args(corpus, broken_dir, "--start-batch", str(last))), corpus
    )
    assert "Resuming from" in resumed.stderr
    _assert_same(full, _load(broken_dir / "epoch-2.pt"))

    # Decoding (the dev split as the test set), with the EMA weights.
    select = ["--exp-dir", str(full_dir), "--epoch", "2", "--avg", "1"]
    select += ["--use-averaged-model", "0", "--use-ema", "1"]
    data = ["--manifest-dir", str(corpus / "data" / "fbank"), "--test-sets", "dev"]
    data += ["--bpe-model", str(corpus / "data" / "lang_bpe_30" / "bpe.model")]
    for method in (["greedy_search"], ["beam_search", "--beam-size", "2"]):
        _run(_cmd("decode.py", *select, *data, "--decoding-method", *method), corpus)
    stats = full_dir / "mel_stats.pt"
    _run(
        _cmd(
            "dump_mel_stats.py", "--manifest-dir", data[1], "--out", str(stats), "--max-cuts", "9"
        ),
        corpus,
    )
    for norm in ([], ["--stream-norm", "1", "--stream-norm-stats", str(stats)]):
        _run(_cmd("streaming_decode.py", *select, *data, "--chunk-size", "2", *norm), corpus)
        _run(_cmd("decode.py", *select, *data, "--chunk-size", "2", *norm), corpus)
    streamed = sorted((full_dir / "streaming" / "greedy_search").glob("recogs-dev-*"))
    offline = sorted((full_dir / "greedy_search").glob("recogs-dev-*chunk-2*"))
    assert len(streamed) == 2 and len(offline) == 2
    for a, b in zip(streamed, offline):  # chunk-wise = simulated, both normalisations
        assert a.read_text() == b.read_text(), (a.name, b.name)

    # Export and the deployment scripts.
    tokens = corpus / "data" / "lang_bpe_30" / "tokens.txt"
    _run(
        _cmd("export.py", *select, "--chunk-size", "2", "--jit", "1", "--tokens", str(tokens)),
        corpus,
    )
    _run(_cmd("export-onnx.py", *select, "--chunk-size", "2", "--tokens", str(tokens)), corpus)
    t = np.arange(24000) / 16000
    sf.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000)
    sf.write(tmp_path / "b.wav", (0.1 * np.sin(2 * np.pi * 700 * t)).astype(np.float32), 16000)
    wavs = [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]
    common = ["--tokens", str(tokens)]
    jit = _run(
        _cmd("jit_pretrained.py", "--nn-model-filename",
             str(full_dir / "jit_script_chunk_2_left_0.pt"), *common, *wavs),
        corpus,
    )  # fmt: skip
    onnx = _run(
        _cmd("onnx_pretrained.py",
             "--encoder-model-filename", str(full_dir / "encoder-epoch-2-avg-1-chunk-2.onnx"),
             "--decoder-model-filename", str(full_dir / "decoder-epoch-2-avg-1.onnx"),
             "--joiner-model-filename", str(full_dir / "joiner-epoch-2-avg-1.onnx"),
             *common, *wavs),
        corpus,
    )  # fmt: skip
    assert jit.stdout == onnx.stdout
    pretrained = _run(
        _cmd("pretrained.py", "--checkpoint", str(full_dir / "pretrained.pt"), *common, *wavs),
        corpus,
    )
    (tmp_path / "wavs.txt").write_text("\n".join(wavs) + "\n")
    out = tmp_path / "preds"
    _run(
        _cmd("dump_predictions.py", "--checkpoint", str(full_dir / "pretrained.pt"), *common,
             "--wav-list", str(tmp_path / "wavs.txt"), "--out-dir", str(out)),
        corpus,
    )  # fmt: skip
    assert sorted(p.name for p in out.glob("*.txt")) == ["a.txt", "b.txt"]
    for wav in wavs:
        text = (out / f"{Path(wav).stem}.txt").read_text().strip()
        assert f"{wav}:\n{text}\n" in pretrained.stdout
