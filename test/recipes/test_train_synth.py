"""egs/synth/ASR/zipformer/train.py end to end on a tiny made-up corpus (random fbank).

Slow tests: exact resume after SIGKILL (mid-epoch, --start-batch) and from an epoch checkpoint
(--start-epoch), and --world-size 2 on CPU (Gloo).
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_PY = REPO_ROOT / "egs" / "synth" / "ASR" / "zipformer" / "train.py"
WORDS = "ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT GOLF HOTEL INDIA KILO LIMA MIKE".split()


def _write_split(fbank_dir: Path, split: str, num_cuts: int, seed: int) -> list:
    from lhotse import CutSet, MonoCut, SupervisionSegment
    from lhotse.features import Features
    from lhotse.features.io import LilcomChunkyWriter

    rng = np.random.default_rng(seed)
    cuts, texts = [], []
    with LilcomChunkyWriter(fbank_dir / f"feats_{split}.lca") as writer:
        for i in range(num_cuts):
            cut_id = f"{split}-{i:03d}"
            duration = round(float(rng.uniform(1.2, 2.4)), 2)
            num_frames = int(round(duration * 100))
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
            features = rng.normal(size=(num_frames, 80)).astype(np.float32)
            key = writer.write(cut_id, features)
            cuts.append(
                MonoCut(
                    id=cut_id,
                    start=0.0,
                    duration=duration,
                    channel=0,
                    supervisions=[
                        SupervisionSegment(
                            id=cut_id, recording_id=cut_id, start=0.0, duration=duration, text=text
                        )
                    ],
                    features=Features(
                        type="fbank",
                        num_frames=num_frames,
                        num_features=80,
                        frame_shift=0.01,
                        sampling_rate=16000,
                        start=0.0,
                        duration=duration,
                        storage_type=writer.name,
                        storage_path=str(writer.storage_path),
                        storage_key=key,
                        recording_id=cut_id,
                        channels=0,
                    ),
                )
            )
            texts.append(text)
    CutSet.from_cuts(cuts).to_file(fbank_dir / f"synth_cuts_{split}.jsonl.gz")
    return texts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A recipe folder with data/fbank/synth_cuts_{train,dev}.jsonl.gz and data/lang_bpe_30."""
    from icefall_lite.data import train_bpe_model

    root = tmp_path_factory.mktemp("synth_recipe")
    fbank_dir = root / "data" / "fbank"
    fbank_dir.mkdir(parents=True)
    texts = _write_split(fbank_dir, "train", 24, seed=1)
    _write_split(fbank_dir, "dev", 12, seed=2)
    transcripts = root / "data" / "transcripts.txt"
    transcripts.write_text("\n".join(texts + WORDS) + "\n")
    train_bpe_model(transcripts, root / "data" / "lang_bpe_30", vocab_size=30)
    return root


def _train_cmd(corpus: Path, exp_dir: Path, *extra: str) -> list:
    return [
        sys.executable,
        str(TRAIN_PY),
        "--exp-dir",
        str(exp_dir),
        "--manifest-dir",
        str(corpus / "data" / "fbank"),
        "--bpe-model",
        str(corpus / "data" / "lang_bpe_30" / "bpe.model"),
        "--model-size",
        "tiny",
        "--decoder-dim",
        "32",
        "--joiner-dim",
        "32",
        "--max-duration",
        "8",
        "--num-buckets",
        "2",
        "--num-workers",
        "0",
        "--enable-musan",
        "0",
        "--tensorboard",
        "1",
        "--num-epochs",
        "2",
        "--save-every-n",
        "2",
        "--average-period",
        "1",
        "--master-port",
        str(12000 + os.getpid() % 1000),
        *extra,
    ]


def _env() -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(cmd: list, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_training_state(a: dict, b: dict) -> None:
    assert a["batch_idx_train"] == b["batch_idx_train"]
    for key in ("model", "model_avg"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert state_a.keys() == state_b.keys()
    for index in state_a:
        for name, value in state_a[index].items():
            if torch.is_tensor(value):
                assert torch.equal(value, state_b[index][name]), f"optimizer {index}.{name}"
    assert a["scheduler"] == b["scheduler"]


def test_bad_flag_is_a_one_line_error(corpus, tmp_path):
    result = subprocess.run(
        _train_cmd(corpus, tmp_path / "exp", "--max-duration", "-3"),
        cwd=corpus,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "train.py: error: --max-duration must be positive, got -3.0"
    ]


@pytest.mark.slow
def test_unbroken_run_and_resumed_runs_end_identical(corpus, tmp_path):
    full_dir = tmp_path / "full"
    _run(_train_cmd(corpus, full_dir), corpus)
    full = _load(full_dir / "epoch-2.pt")
    assert full["cur_epoch"] == 2 and full["batch_idx_train"] >= 4
    for name in ("epoch-1.pt", "best-train-loss.pt", "best-valid-loss.pt"):
        assert (full_dir / name).is_file(), name
    assert list((full_dir / "tensorboard").iterdir())
    assert list((full_dir / "log").glob("log-train*"))
    assert len(full["rng_states"]) == 1
    assert isinstance(full["exp_dir"], str)  # params are stored as plain types

    # Kill a second run with SIGKILL right after its first mid-epoch checkpoint ...
    broken_dir = tmp_path / "broken"
    process = subprocess.Popen(
        _train_cmd(corpus, broken_dir),
        cwd=corpus,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (broken_dir / "checkpoint-2.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (broken_dir / "epoch-2.pt").exists()
    last = max(int(p.stem.split("-")[1]) for p in broken_dir.glob("checkpoint-*.pt"))
    written_before = {p.name: p.stat().st_mtime_ns for p in broken_dir.glob("checkpoint-*.pt")}

    # ... and resume it from its last checkpoint: the result is bit-identical. Training is
    # deterministic, so a run that silently started over would match too: it must say where
    # it resumed from and must not redo (and rewrite the checkpoints of) steps 1..last.
    resumed = _run(_train_cmd(corpus, broken_dir, "--start-batch", str(last)), corpus)
    assert f"Resuming from {broken_dir / f'checkpoint-{last}.pt'}" in resumed.stderr
    written_after = {p.name: p.stat().st_mtime_ns for p in broken_dir.glob("checkpoint-*.pt")}
    assert {k: written_after.get(k) for k in written_before} == written_before
    assert len(written_after) > len(written_before), "the resumed run wrote no checkpoint"
    _assert_same_training_state(full, _load(broken_dir / "epoch-2.pt"))

    # Resuming from an epoch checkpoint replays the next epoch exactly as well.
    epoch_dir = tmp_path / "from-epoch"
    epoch_dir.mkdir()
    (epoch_dir / "epoch-1.pt").write_bytes((full_dir / "epoch-1.pt").read_bytes())
    resumed = _run(_train_cmd(corpus, epoch_dir, "--start-epoch", "2"), corpus)
    assert f"Resuming from {epoch_dir / 'epoch-1.pt'}" in resumed.stderr
    assert not (epoch_dir / "checkpoint-2.pt").exists(), "epoch 1 was trained again"
    _assert_same_training_state(full, _load(epoch_dir / "epoch-2.pt"))


@pytest.mark.slow
def test_world_size_two_on_cpu(corpus, tmp_path):
    exp_dir = tmp_path / "ddp"
    _run(_train_cmd(corpus, exp_dir, "--world-size", "2", "--num-epochs", "1"), corpus)
    checkpoint = _load(exp_dir / "epoch-1.pt")
    assert checkpoint["world_size"] == 2
    assert len(checkpoint["rng_states"]) == 2
    # The two ranks drew different dropout/SpecAugment randomness.
    assert not torch.equal(
        checkpoint["rng_states"][0]["torch"], checkpoint["rng_states"][1]["torch"]
    )
    assert checkpoint["batch_idx_train"] >= 1
    assert all(
        torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point()
    )


def _spawned_ranks(pid: int) -> list:
    """The torch.multiprocessing.spawn children of process ``pid``, oldest first."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ranks = []
    for child in map(int, children):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                ranks.append(child)
        except FileNotFoundError:
            pass
    return sorted(ranks)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_rank_dying_inside_train_py_stops_the_whole_job(corpus, tmp_path):
    """SIGKILL one of the two ranks mid-epoch: train.py must exit with an error naming it,
    promptly (not after --dist-timeout, not never), and leave the checkpoints on disk intact."""
    exp_dir = tmp_path / "dying"
    cmd = _train_cmd(corpus, exp_dir, "--world-size", "2", "--dist-timeout", "60")
    process = subprocess.Popen(
        cmd, cwd=corpus, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.time() + 300
        while not (exp_dir / "checkpoint-2.pt").exists() and time.time() < deadline:
            time.sleep(0.02)
        ranks = _spawned_ranks(process.pid)
        assert len(ranks) == 2, ranks
        os.kill(ranks[-1], signal.SIGKILL)
        killed_at = time.time()
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert re.search(r"process \d terminated with signal SIGKILL", stderr), stderr[-2000:]
    assert time.time() - killed_at < 30, "the job waited for the collective timeout"
    assert not (exp_dir / "epoch-2.pt").exists()
    assert _load(exp_dir / "checkpoint-2.pt")["batch_idx_train"] == 2


@pytest.mark.slow
def test_torchrun_launch_then_fine_tune_with_init_from(corpus, tmp_path):
    exp_dir = tmp_path / "torchrun"
    cmd = _train_cmd(corpus, exp_dir, "--num-epochs", "1")
    port = str(13000 + os.getpid() % 1000)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    _run(torchrun + ["--master-port", port] + cmd[1:], corpus)
    checkpoint = _load(exp_dir / "epoch-1.pt")
    assert checkpoint["world_size"] == 2 and checkpoint["use_ddp_launch"] is True
    assert len(checkpoint["rng_states"]) == 2

    # --init-from starts a new run from those weights (step counter and optimizer fresh).
    tuned_dir = tmp_path / "fine-tuned"
    _run(
        _train_cmd(
            corpus, tuned_dir, "--num-epochs", "1", "--init-from", str(exp_dir / "epoch-1.pt")
        ),
        corpus,
    )
    log = "".join(p.read_text() for p in (tuned_dir / "log").glob("log-train*"))
    assert "Initialising the model from" in log
    tuned = _load(tuned_dir / "epoch-1.pt")
    assert tuned["batch_idx_train"] == checkpoint["batch_idx_train"] * 2  # one rank vs. two


def test_oom_scan_runs_the_pessimistic_batches(corpus):
    """The GPU pre-flight check, exercised on CPU with the tiny corpus."""
    import argparse

    from icefall_lite.data import AsrDataModule, load_bpe_model
    from icefall_lite.models import add_model_arguments, build_model
    from icefall_lite.training import (
        add_training_arguments,
        get_training_params,
        scan_pessimistic_batches_for_oom,
    )

    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    add_model_arguments(parser)
    AsrDataModule.add_arguments(parser)
    argv = _train_cmd(corpus, corpus / "unused")[2:]
    params = get_training_params()
    params.update(vars(parser.parse_args(argv)))
    sp = load_bpe_model(params.bpe_model)
    params.update(vocab_size=sp.get_piece_size(), blank_id=0)
    model = build_model(params)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = AsrDataModule(params)
    train_dl = data.train_dataloaders(data.load_cuts("synth", "train"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scan_pessimistic_batches_for_oom(model, train_dl, optimizer, sp, params)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
