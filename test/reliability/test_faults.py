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
