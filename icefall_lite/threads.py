"""OpenMP wait policy for a job that may share its CPU cores (no torch import here).

libgomp's default lets a thread spin for a while before it sleeps. On an idle machine that is
the fastest setting (a 2-thread training step of the synth recipe: 283 ms, against 553 ms with
``OMP_WAIT_POLICY=PASSIVE``); beside another busy process the spinning threads fight it for the
cores and the step takes 1,133 ms, against 638 ms with PASSIVE (RESULTS.md, "Threads on a shared
machine"). :func:`choose_omp_wait_policy` picks PASSIVE when other processes are busy at start
(niced ones do not count while the kernel's autogroup is off: they yield the cores).
It must run before torch is imported (libgomp reads the variable when it loads), which is why
the recipe scripts call it first.
"""

import os
import time
from typing import Optional, Tuple

# Other processes' CPU use (in cores) at or above which the job starts with PASSIVE waiting.
BUSY_CORES = 0.5


def _cpu_times(
    path: str = "/proc/stat", count_niced: Optional[bool] = None
) -> Optional[Tuple[float, float]]:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where it is not readable.

    ``count_niced`` False leaves out the time of niced processes (nice > 0): with the kernel's
    autogroup off they yield the cores to a nice-0 job, and spinning OpenMP threads beside them
    cost nothing (a 2-thread step beside a ``nice -n 19`` busy loop: 329 ms spinning, 500 ms
    PASSIVE; RESULTS.md, "Fifth round"). Default: count them only with autogroup on, where
    niced jobs of other sessions still get an equal share.
    """
    if count_niced is None:
        count_niced = autogroup_enabled()
    try:
        with open(path) as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    niced = 0.0 if count_niced else fields[1]
    return sum(fields) - idle - niced, sum(fields)


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def other_busy_cores(window: float = 0.3) -> Optional[float]:
    """Cores kept busy by other processes over ``window`` seconds (None if unknown)."""
    start, own_start = _cpu_times(), _own_cpu_seconds()
    if start is None:
        return None
    time.sleep(window)
    end, own_end = _cpu_times(), _own_cpu_seconds()
    if end is None or end[1] <= start[1]:
        return None
    cores = os.cpu_count() or 1
    busy_fraction = (end[0] - start[0]) / (end[1] - start[1])
    return max(0.0, busy_fraction * cores - (own_end - own_start) / window)


AUTOGROUP_SWITCH = "/proc/sys/kernel/sched_autogroup_enabled"


def autogroup_enabled(path: str = AUTOGROUP_SWITCH) -> bool:
    """Whether the kernel groups processes by session for scheduling (False if unknown)."""
    try:
        with open(path) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def autogroup_note(path: str = AUTOGROUP_SWITCH) -> str:
    """A warning for the log when the kernel groups processes by session ("" otherwise).

    With autogroup on, ``nice`` only orders processes within one session: niced jobs started
    from other shells still take an equal share of the cores (measured on the 2-core machine:
    a pinned 1-thread training ran at 40 % of a core beside four niced sessions, at 70-90 %
    with autogroup off).
    """
    if not autogroup_enabled(path):
        return ""
    return (
        "; kernel.sched_autogroup_enabled=1: niced jobs of other sessions still get an equal "
        "share of the cores (as root: echo 0 > " + path + ")"
    )


def choose_omp_wait_policy(busy_cores: float = BUSY_CORES) -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when other processes use ``busy_cores`` or more.

    An ``OMP_WAIT_POLICY`` already in the environment is left as it is. Returns what was
    decided, for the log: ``"PASSIVE (other processes busy: 1.0 cores)"``, ``"default ..."``
    or ``"ACTIVE (set by the user)"``.
    """
    if os.environ.get("OMP_WAIT_POLICY"):
        return f"{os.environ['OMP_WAIT_POLICY']} (set by the user)"
    busy = other_busy_cores()
    if busy is not None and busy >= busy_cores:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return f"PASSIVE (other processes busy: {busy:.1f} cores{autogroup_note()})"
    shown = "unknown" if busy is None else f"{busy:.1f} cores"
    return f"libgomp default, threads spin before they sleep (other processes busy: {shown})"
