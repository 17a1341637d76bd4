"""Fault injection: a save killed by SIGKILL, or failing with ENOSPC, never costs the previous
checkpoint; training stops with one line; the partial files are cleaned at the next start."""

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from conftest import RECIPE, REPO

from icefall_lite.checkpoint import read_checkpoint, remove_stale_temporary_files, save_checkpoint
from icefall_lite.cli.errors import run_main

_SAVER = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    from icefall_lite.checkpoint import save_checkpoint

    out = sys.argv[1]
    model = nn.Linear(1024, 1024)  # ~4 MB of weights, ~8 MB with the average
    for k in range(1, 10**6):
        with torch.no_grad():
            model.weight.fill_(float(k))
        save_checkpoint(out, model, model_avg=model, params={"k": k})
        print(k, flush=True)
    """)


def _checkpoint_is_whole(path) -> int:
    checkpoint = read_checkpoint(path)
    k = checkpoint["k"]
    assert torch.all(checkpoint["model"]["weight"] == float(k))
    assert torch.all(checkpoint["model_avg"]["weight"] == float(k))
    return k


def test_sigkill_during_save_leaves_the_previous_checkpoint(tmp_path):
    """Kill a process that saves the same checkpoint name in a loop at random moments (seeded):
    the file is always a whole checkpoint, and the leftovers are partial .tmp files only."""
    rng = random.Random(18)
    out = tmp_path / "epoch-1.pt"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    last_seen = 0
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(out)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout.readline().strip()  # one whole save done
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        k = _checkpoint_is_whole(out)
        assert k >= 1
        last_seen = max(last_seen, k)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "epoch-1.pt"]
    assert all(name.startswith(".epoch-1.pt.") and name.endswith(".tmp") for name in leftovers)
    remove_stale_temporary_files(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-1.pt"]


# The sampler both the killed child and this process build: 300 cuts of 1 to 3.7 s in buckets.
_MAKE_SAMPLER = textwrap.dedent("""
    import warnings
    from lhotse import CutSet
    from lhotse.testing.dummies import dummy_cut
    from icefall_lite.data.datamodule import ExactResumeBucketingSampler

    def make_sampler():
        cuts = CutSet.from_cuts(
            dummy_cut(i, duration=1.0 + (7 * i % 10) * 0.3, recording_duration=4.0)
            for i in range(300)
        )
        with warnings.catch_warnings():  # lhotse's note on an eager CutSet
            warnings.simplefilter("ignore")
            sampler = ExactResumeBucketingSampler(
                cuts, max_duration=12.0, shuffle=True, num_buckets=4, drop_last=False, seed=18
            )
        sampler.set_epoch(3)
        return sampler
    """)

# Saves a checkpoint carrying the sampler's state after every batch, as the training loop does
# (the count of consumed batches is what _CountingDataLoader sets). Given a batch number, the
# save of that batch says so from inside lhotse's DynamicBucketingSampler.state_dict (called by
# ExactResumeBucketingSampler.state_dict, called by save_checkpoint) and pauses there, so that
# the parent's kill lands inside it.
_SAMPLER_SAVER = _MAKE_SAMPLER + textwrap.dedent("""
    import sys, time
    import torch
    from lhotse.dataset import DynamicBucketingSampler
    from icefall_lite.checkpoint import save_checkpoint

    out, pause_at = sys.argv[1], int(sys.argv[2])
    lhotse_state_dict = DynamicBucketingSampler.state_dict
    k = 0

    def paused_state_dict(self):
        state = lhotse_state_dict(self)
        if k == pause_at:
            print(f"in-state-dict {k}", flush=True)
            time.sleep(2.0)  # the parent kills within 0.2 s
            print(f"left-state-dict {k}", flush=True)
        return state

    DynamicBucketingSampler.state_dict = paused_state_dict
    model = torch.nn.Linear(1024, 1024)  # ~4 MB of weights
    sampler = make_sampler()
    for k, batch in enumerate(sampler, start=1):
        sampler.num_batches_consumed = k
        params = {"k": k, "last_batch": [cut.id for cut in batch]}
        save_checkpoint(out, model, params=params, sampler=sampler)
        print(f"saved {k}", flush=True)
    print("done", flush=True)
    """)


def _batch_ids(sampler) -> list:
    return [[cut.id for cut in batch] for batch in sampler]


def test_sigkill_inside_the_sampler_state_write_resumes_the_sampler_exactly(tmp_path):
    """Kill a child that saves a checkpoint with the sampler's state after every batch: twice
    inside ``sampler.state_dict()`` (at a seeded batch, a seeded moment into the call) and
    once at a seeded moment of the loop (mostly in the write of the file that carries it).
    Each time the file holds the previous whole checkpoint, and a fresh sampler restored from
    it yields exactly the batches an uninterrupted run yields after that one."""
    namespace: dict = {}
    exec(_MAKE_SAMPLER, namespace)
    make_sampler = namespace["make_sampler"]
    reference = _batch_ids(make_sampler())
    assert len(reference) >= 20
    rng = random.Random(18)
    out = tmp_path / "checkpoint-8.pt"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for mode in ("inside", "inside", "anywhere"):
        out.unlink(missing_ok=True)
        target = rng.randint(2, 10) if mode == "inside" else 0
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAMPLER_SAVER, str(out), str(target)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        if mode == "inside":
            while proc.stdout.readline().strip() != f"in-state-dict {target}":
                assert proc.poll() is None, "the saver ended before the chosen batch"
        else:
            assert proc.stdout.readline().strip() == "saved 1"
        time.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        tail = proc.stdout.read().split()
        proc.stdout.close()
        assert "done" not in tail, "the saver finished before it was killed"
        if mode == "inside":
            assert "left-state-dict" not in tail, "the kill came after sampler.state_dict()"

        checkpoint = read_checkpoint(out)
        k = checkpoint["k"]
        if mode == "inside":
            assert k == target - 1  # the save under way was lost, the previous one is whole
        assert checkpoint["last_batch"] == reference[k - 1]
        assert checkpoint["sampler"]["num_batches_consumed"] == k
        resumed = make_sampler()
        resumed.load_state_dict(checkpoint["sampler"])
        assert _batch_ids(resumed) == reference[k:], f"{mode}: resume after batch {k}"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != out.name]
    assert all(name.startswith(f".{out.name}.") and name.endswith(".tmp") for name in leftovers)


def _enospc_after(monkeypatch, good_saves: int):
    """Patch torch.save: after ``good_saves`` calls, write half a file then fail with ENOSPC
    (what a full disk does)."""
    real_save = torch.save
    calls = []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) <= good_saves:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device", getattr(f, "name", None))

    monkeypatch.setattr(torch, "save", save)


def test_enospc_on_save_keeps_the_previous_checkpoint_and_is_one_line(
    tmp_path, monkeypatch, capsys
):
    model = torch.nn.Linear(4, 4)
    out = tmp_path / "epoch-1.pt"
    _enospc_after(monkeypatch, good_saves=1)
    save_checkpoint(out, model, params={"k": 1})
    before = out.read_bytes()

    def main(argv):
        save_checkpoint(out, model, params={"k": 2})

    with pytest.raises(SystemExit) as exit_:
        run_main("train.py", main, [])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert err.count("\n") == 1 and err.startswith("train.py: error: ")
    assert "No space left on device" in err and "free some space" in err
    assert out.read_bytes() == before  # the previous checkpoint survives, whole
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-1.pt"]  # no partial file left


_TRAIN_WITH_FULL_DISK = textwrap.dedent("""
    import errno, runpy, sys
    import torch
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("cur_epoch") == 2:  # epoch-2.pt's save
            f.write(b"\\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    torch.save = save
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """)


@pytest.mark.slow
def test_training_stops_with_one_line_when_the_disk_fills(tmp_path):
    """train.py for 2 epochs with epoch-2.pt's save failing with ENOSPC: exit 1, one line,
    epoch-1.pt whole, no partial file; the stale .tmp planted before the run was removed."""
    from test_train_synth import WORDS, _write_split

    from icefall_lite.data import train_bpe_model

    fbank = tmp_path / "fbank"
    fbank.mkdir()
    texts = _write_split(fbank, "train", 16, seed=1)
    _write_split(fbank, "dev", 6, seed=2)
    (tmp_path / "text.txt").write_text("\n".join(texts + WORDS) + "\n")
    bpe_model = train_bpe_model(tmp_path / "text.txt", tmp_path / "lang_bpe_30", vocab_size=30)
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / ".checkpoint-4.pt.x1y2.tmp").write_bytes(b"left by a killed run")
    args = [
        "--exp-dir",
        str(exp),
        "--bpe-model",
        str(bpe_model),
        "--manifest-dir",
        str(fbank),
        "--model-size",
        "tiny",
        "--decoder-dim",
        "32",
        "--joiner-dim",
        "32",
        "--num-workers",
        "0",
        "--enable-musan",
        "0",
        "--tensorboard",
        "0",
        "--num-epochs",
        "2",
        "--max-duration",
        "8",
        "--num-buckets",
        "2",
        "--save-every-n",
        "0",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _TRAIN_WITH_FULL_DISK, str(RECIPE / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: ") and "No space left on device" in last
    assert "Traceback" not in proc.stderr
    assert read_checkpoint(exp / "epoch-1.pt")["cur_epoch"] == 1
    names = {p.name for p in exp.iterdir()}
    assert "epoch-2.pt" not in names
    assert not [n for n in names if n.endswith(".tmp")], names
