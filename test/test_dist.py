import argparse
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.multiprocessing import ProcessRaisedException

from icefall_lite.dist import (
    add_dist_arguments,
    choose_device,
    cleanup_dist,
    get_rank,
    get_world_size,
    launch,
    min_over_ranks,
    setup_dist,
)
from icefall_lite.utils import MetricsTracker, setup_logger

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def ddp_step_worker(rank, world_size, args):
    torch.set_num_threads(1)
    setup_dist(rank, world_size, args.master_port, timeout=30)
    try:
        assert get_rank() == rank and get_world_size() == world_size
        log_file = setup_logger(f"{args.out_dir}/log/log-train", use_console=False)
        summed = torch.tensor([float(rank + 1)])
        dist.all_reduce(summed)

        tracker = MetricsTracker()
        tracker["frames"] = 10 * (rank + 1)
        tracker["loss"] = 2.0 * (rank + 1)
        tracker.reduce(choose_device(rank))

        torch.manual_seed(0)  # same initial weights on every rank
        model = nn.parallel.DistributedDataParallel(nn.Linear(3, 2))
        torch.manual_seed(100 + rank)  # different data on every rank
        x = torch.randn(4, 3)
        model(x).pow(2).sum().backward()
        grad = model.module.weight.grad.clone()
        gathered = [torch.zeros_like(grad) for _ in range(world_size)]
        dist.all_gather(gathered, grad)
        result = {
            "all_reduce": summed.item(),
            "min_over_ranks": min_over_ranks(10 + rank, torch.device("cpu"), world_size),
            "frames": tracker["frames"],
            "loss": tracker["loss"],
            "grad": grad.tolist(),
            "max_diff": max((g - grad).abs().max().item() for g in gathered),
            "log_file": log_file,
        }
        (Path(args.out_dir) / f"rank-{rank}.json").write_text(json.dumps(result))
    finally:
        cleanup_dist()


def stalled_peer_worker(rank, world_size, args):
    torch.set_num_threads(1)
    setup_dist(rank, world_size, args.master_port, timeout=args.timeout)
    if rank == 1:
        if args.mode == "hang":
            time.sleep(120)  # alive but never joins the collective
        os._exit(0)  # dies without a word (exit code 0, so spawn does not stop rank 0)
    start = time.time()
    try:
        dist.all_reduce(torch.ones(1))
    except Exception as e:
        (Path(args.out_dir) / "rank-0-error.txt").write_text(
            f"{time.time() - start:.1f}\n{type(e).__name__}: {e}"
        )
        raise
    (Path(args.out_dir) / "rank-0-error.txt").write_text("no error")


def test_world_size_two_gloo_all_reduce_and_ddp_step(tmp_path):
    args = SimpleNamespace(master_port=free_port(), out_dir=str(tmp_path), world_size=2)
    launch(ddp_step_worker, args)
    results = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    for result in results:
        assert result["all_reduce"] == 3.0
        assert result["min_over_ranks"] == 10
        assert result["frames"] == 30 and result["loss"] == 6.0
        assert result["max_diff"] == 0.0
    assert results[0]["grad"] == results[1]["grad"]
    for rank, result in enumerate(results):
        assert Path(result["log_file"]).name.startswith("log-train-20")
        assert result["log_file"].endswith(f"-{rank}")  # icefall: log-train-<date>-<rank>

    # DDP averages gradients: compare with the mean of the per-rank gradients
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    grads = []
    for rank in (0, 1):
        model.zero_grad()
        torch.manual_seed(100 + rank)
        model(torch.randn(4, 3)).pow(2).sum().backward()
        grads.append(model.weight.grad.clone())
    expected = (grads[0] + grads[1]) / 2
    assert torch.allclose(torch.tensor(results[0]["grad"]), expected, atol=1e-6)


# Each spawned rank re-imports torch (seconds to tens of seconds on a loaded 2-core machine).
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hang", "exit"])
def test_stalled_or_dead_rank_makes_the_other_fail_within_timeout(tmp_path, mode):
    """A rank that hangs makes the other fail after --dist-timeout, not sooner or much later;
    a rank that dies makes it fail at once on the closed connection (no timeout wait)."""
    timeout = 6
    args = SimpleNamespace(
        master_port=free_port(), out_dir=str(tmp_path), world_size=2, timeout=timeout, mode=mode
    )
    with pytest.raises(ProcessRaisedException, match="Process 0 terminated with the following"):
        launch(stalled_peer_worker, args)
    report = (tmp_path / "rank-0-error.txt").read_text()
    waited = float(report.split("\n")[0])
    if mode == "hang":
        assert f"Timed out waiting {1000 * timeout}ms" in report, report
        assert timeout - 0.5 <= waited <= timeout + 2, report
    else:
        assert re.search("Connection (reset|closed) by peer", report), report
        assert waited < timeout / 2, report


@pytest.mark.slow
def test_torchrun_env_launch(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
            import sys, torch, torch.distributed as dist
            from pathlib import Path
            from types import SimpleNamespace
            sys.path.insert(0, {str(REPO_ROOT)!r})
            from icefall_lite.dist import cleanup_dist, launch, setup_dist

            def run(rank, world_size, args):
                setup_dist(rank, world_size, use_ddp_launch=args.use_ddp_launch, timeout=30)
                t = torch.tensor([float(rank)])
                dist.all_reduce(t)
                Path({str(tmp_path)!r}, f"rank-{{rank}}").write_text(f"{{world_size}} {{t.item()}}")
                cleanup_dist()

            launch(run, SimpleNamespace(use_ddp_launch=False, world_size=1))
            """))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank-{rank}").read_text() == "2 1.0"


def test_single_process_and_argument_helpers():
    calls = []
    launch(
        lambda rank, world_size, args: calls.append((rank, world_size)),
        SimpleNamespace(world_size=1, use_ddp_launch=False),
    )
    assert calls == [(0, 1)]
    parser = argparse.ArgumentParser()
    add_dist_arguments(parser)
    args = parser.parse_args(["--world-size", "4", "--use-ddp-launch", "true"])
    assert args.world_size == 4 and args.use_ddp_launch is True and args.master_port == 12354
    assert choose_device(0) == (
        torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    )
    if "RANK" not in os.environ:
        with pytest.raises(RuntimeError, match="torchrun"):
            setup_dist(0, 2, use_ddp_launch=True)
    with pytest.raises(ValueError, match="dist-timeout"):
        setup_dist(0, 2, timeout=0)


def user_error_worker(rank, world_size, args):
    """Rank 1 stops on a user error; rank 0 waits (without a collective, whose connection
    error would race rank 1's report) until the launcher stops it."""
    from icefall_lite.errors import UsageError

    torch.set_num_threads(1)
    setup_dist(rank, world_size, args.master_port, timeout=30)
    try:
        if rank == 1:
            if args.kind == "usage":
                raise UsageError(
                    "--manifest-dir x: no synth_cuts_train.jsonl.gz there (run prepare.sh)"
                )
            open(Path(args.out_dir) / "missing" / "file.txt")
        time.sleep(120)
    finally:
        cleanup_dist()


# Each spawned rank re-imports torch (seconds to tens of seconds on a loaded 2-core machine).
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["usage", "oserror"])
def test_user_error_in_a_rank_is_reraised_as_itself(tmp_path, kind):
    """A user error inside a spawned rank reaches the parent as the same error (so the script
    prints one line), not as torch's ProcessRaisedException with the child's traceback."""
    from icefall_lite.errors import UsageError

    args = SimpleNamespace(master_port=free_port(), out_dir=str(tmp_path), world_size=2, kind=kind)
    expected = UsageError if kind == "usage" else FileNotFoundError
    with pytest.raises(expected) as caught:
        launch(user_error_worker, args)
    if kind == "usage":
        assert "no synth_cuts_train.jsonl.gz there" in str(caught.value)
    else:
        assert caught.value.filename.endswith("missing/file.txt")


@pytest.mark.slow
def test_user_error_in_a_rank_with_debug_keeps_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("ICEFALL_LITE_DEBUG", "1")
    args = SimpleNamespace(
        master_port=free_port(), out_dir=str(tmp_path), world_size=2, kind="usage"
    )
    with pytest.raises(ProcessRaisedException, match="UsageError"):
        launch(user_error_worker, args)
