#!/usr/bin/env python3
"""Time and peak memory of one forward + backward of the pruned and the full RNN-T loss.

Usage (from the repository root):

    .venv/bin/python tools/bench/rnnt_loss.py                       # LibriSpeech-like shapes
    .venv/bin/python tools/bench/rnnt_loss.py --frames 250,500      # how both scale with T
    .venv/bin/python tools/bench/rnnt_loss.py --backends builtin --repeats 3 --device cuda

Each (loss, backend, T) case runs in its own subprocess, so that its peak memory can be read
honestly: on CPU the worker reports the growth of ``ru_maxrss`` (peak resident set size) between
"inputs ready" and "after the timed runs"; on CUDA it reports ``torch.cuda.max_memory_allocated``
over the same span.

"pruned" is the whole pruned recipe: ``rnnt_loss_simple(return_grad=True)``,
``get_rnnt_prune_ranges``, ``do_rnnt_pruning``, the joiner on (B, T, prune_range), and
``rnnt_loss_pruned``, with loss ``0.5 * simple + pruned``. "full" is the joiner on (B, T, S + 1)
and ``rnnt_loss``. The joiner is the additive one, ``logits = am + lm`` in vocabulary space, so
what is timed is the loss machinery, not a projection layer. The ``torchaudio`` backend (full
loss only, ``torchaudio.functional.rnnt_loss``) is run when torchaudio imports.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=16, help="Batch size B.")
    parser.add_argument(
        "--frames", type=str, default="250,500", help="Comma-separated encoder lengths T."
    )
    parser.add_argument("--symbols", type=int, default=60, help="Transcript length S (tokens).")
    parser.add_argument("--vocab", type=int, default=500, help="Vocabulary size C incl. blank.")
    parser.add_argument("--prune-range", type=int, default=5, help="s_range of the pruned loss.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs per case (median).")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads value.")
    parser.add_argument("--device", type=str, default="cpu", help="cpu or cuda.")
    parser.add_argument(
        "--backends",
        type=str,
        default="builtin,fast_rnnt,k2,torchaudio",
        help="Comma-separated backends; unavailable ones are reported and skipped.",
    )
    parser.add_argument("--losses", type=str, default="pruned,full", help="pruned and/or full.")
    parser.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    return parser


def _make_inputs(args: argparse.Namespace, T: int):
    import torch

    torch.manual_seed(0)
    device = torch.device(args.device)
    B, S, C = args.batch, args.symbols, args.vocab
    am = torch.randn(B, T, C, device=device, requires_grad=True)
    lm = torch.randn(B, S + 1, C, device=device, requires_grad=True)
    symbols = torch.randint(1, C, (B, S), device=device)
    # Ragged batch, as from a bucketing sampler: lengths within 80-100 % of the maximum.
    frames = torch.randint(int(0.8 * T), T + 1, (B,), device=device)
    frames[0] = T
    num_symbols = torch.randint(int(0.8 * S), S + 1, (B,), device=device)
    num_symbols[0] = S
    boundary = torch.zeros(B, 4, dtype=torch.int64, device=device)
    boundary[:, 2] = num_symbols
    boundary[:, 3] = frames
    return am, lm, symbols, boundary


def _forward(loss_name: str, backend: str, args: argparse.Namespace, inputs):
    """The loss as a model's forward() computes it; its temporaries die when it returns."""
    from icefall_lite import rnnt

    am, lm, symbols, boundary = inputs
    if backend == "torchaudio":
        import torchaudio

        logits = am.unsqueeze(2) + lm.unsqueeze(1)
        loss = torchaudio.functional.rnnt_loss(
            logits,
            symbols.int(),
            boundary[:, 3].int(),
            boundary[:, 2].int(),
            blank=0,
            reduction="sum",
        )
    elif loss_name == "pruned":
        simple_loss, (px_grad, py_grad) = rnnt.rnnt_loss_simple(
            lm=lm,
            am=am,
            symbols=symbols,
            termination_symbol=0,
            boundary=boundary,
            reduction="sum",
            return_grad=True,
        )
        ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, args.prune_range)
        am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am, lm, ranges)
        pruned_loss = rnnt.rnnt_loss_pruned(
            logits=am_pruned + lm_pruned,
            symbols=symbols,
            ranges=ranges,
            termination_symbol=0,
            boundary=boundary,
            reduction="sum",
        )
        loss = 0.5 * simple_loss + pruned_loss
    else:
        logits = am.unsqueeze(2) + lm.unsqueeze(1)
        loss = rnnt.rnnt_loss(
            logits=logits,
            symbols=symbols,
            termination_symbol=0,
            boundary=boundary,
            reduction="sum",
        )
    return loss


def _one_step(loss_name: str, backend: str, args: argparse.Namespace, inputs) -> None:
    import torch

    _forward(loss_name, backend, args, inputs).backward()
    am, lm = inputs[0], inputs[1]
    am.grad = lm.grad = None
    if am.is_cuda:
        torch.cuda.synchronize()


def run_worker(args: argparse.Namespace) -> Dict:
    """Runs one case in this process and returns its measurements."""
    import torch

    loss_name, backend, T = args.worker.split(":")
    T = int(T)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO_ROOT))
    from icefall_lite import rnnt

    if backend == "torchaudio":
        if loss_name != "full":
            return {"skipped": "torchaudio has no pruned loss"}
        try:
            import torchaudio  # noqa: F401
        except Exception as e:
            return {"skipped": f"torchaudio not importable ({type(e).__name__})"}
    else:
        try:
            rnnt.set_backend(backend)
            rnnt.resolve_backend(torch.device(args.device))
        except (ImportError, RuntimeError) as e:
            return {"skipped": str(e)}

    # A tiny run first, so that one-off library set-up (allocator arenas, BLAS buffers) is not
    # counted as the loss's memory.
    tiny = argparse.Namespace(**{**vars(args), "batch": 2, "symbols": 4, "vocab": 8})
    _one_step(loss_name, backend, tiny, _make_inputs(tiny, 10))
    inputs = _make_inputs(args, T)
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _one_step(loss_name, backend, args, inputs)  # warm-up (also part of the peak)
    times, cpu_times = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        _one_step(loss_name, backend, args, inputs)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {
        "time_ms": 1000 * statistics.median(times),
        "cpu_ms": 1000 * statistics.median(cpu_times),
        "peak_mib": peak / 2**20,
    }


def _run_case(args: argparse.Namespace, loss_name: str, backend: str, T: int) -> Dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        f"{loss_name}:{backend}:{T}",
    ]
    for flag in ("batch", "symbols", "vocab", "prune_range", "repeats", "threads", "device"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"skipped": f"worker failed: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    args = get_parser().parse_args()
    if args.worker is not None:
        print(json.dumps(run_worker(args)))
        return

    import torch

    frames_list = [int(x) for x in args.frames.split(",")]
    backends = args.backends.split(",")
    losses = args.losses.split(",")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, threads={args.threads}, device={args.device}"
    )
    print(
        f"# B={args.batch} S={args.symbols} C={args.vocab} prune_range={args.prune_range} "
        f"repeats={args.repeats} (median); peak = "
        + ("cuda max_memory_allocated" if args.device == "cuda" else "ru_maxrss growth")
    )
    results: Dict = {}
    rows: List[str] = []
    header = "| loss | backend | T | wall ms / fwd+bwd | CPU ms / fwd+bwd | peak memory (MiB) |"
    rows += [header, "| --- | --- | ---: | ---: | ---: | ---: |"]
    for T in frames_list:
        for loss_name in losses:
            for backend in backends:
                if backend == "torchaudio" and loss_name != "full":
                    continue
                r = _run_case(args, loss_name, backend, T)
                results[(loss_name, backend, T)] = r
                if "skipped" in r:
                    print(f"# skipped {loss_name}/{backend}/T={T}: {r['skipped']}", flush=True)
                    continue
                rows.append(
                    f"| {loss_name} | {backend} | {T} | {_fmt(r['time_ms'], '.1f')} | "
                    f"{_fmt(r['cpu_ms'], '.1f')} | {_fmt(r['peak_mib'], '.1f')} |"
                )
                print(rows[-1], flush=True)
    print()
    print("\n".join(rows))
    print()
    for T in frames_list:
        pruned = results.get(("pruned", "builtin", T), {})
        full = results.get(("full", "builtin", T), {})
        fast = results.get(("pruned", "fast_rnnt", T), {})
        if "time_ms" in pruned and "time_ms" in full:
            print(
                f"T={T}: built-in full / built-in pruned: wall time "
                f"x{full['time_ms'] / pruned['time_ms']:.1f}, CPU time "
                f"x{full['cpu_ms'] / pruned['cpu_ms']:.1f}, peak memory "
                f"x{full['peak_mib'] / max(pruned['peak_mib'], 1e-3):.1f}"
            )
        if "time_ms" in pruned and "time_ms" in fast:
            print(
                f"T={T}: built-in pruned / fast_rnnt pruned: wall time "
                f"x{pruned['time_ms'] / fast['time_ms']:.2f}, CPU time "
                f"x{pruned['cpu_ms'] / fast['cpu_ms']:.2f}"
            )


if __name__ == "__main__":
    main()
