"""The suite collects the same test ids in every process.

tools/test.sh runs pytest with pytest-xdist, which refuses to start when its workers collect
different ids (CI failed once on a parametrize value holding a gzip header, which records the time
it was made). Workers are separate interpreters started at different moments with different hash
seeds, so this test collects twice under exactly those differences.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _collected_ids(hash_seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "test"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_two_processes_collect_the_same_ids() -> None:
    first = _collected_ids("1")
    time.sleep(1.1)  # a value derived from the clock's seconds would now differ
    second = _collected_ids("2")
    assert len(first) > 100, "collection found almost nothing; the check would be vacuous"
    differing = sorted(set(first) ^ set(second))
    assert not differing, f"ids differ between processes: {differing[:5]}"
    assert first == second, "same ids, different order: pytest-xdist rejects that too"
