"""Every tracked script with a shebang line is executable in a fresh clone.

The mode that matters is the one git records (``git ls-files -s``), not the working tree's: a
clone gets git's mode, so a script made executable only locally still fails with "Permission
denied" for a new user (as tools/bench/time_to_accuracy.sh did).
"""

import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tracked_modes():
    try:
        out = subprocess.run(
            ["git", "ls-files", "-s", "-z"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for entry in filter(None, out.split(b"\0")):
        meta, path = entry.split(b"\t", 1)
        yield meta.split()[0].decode(), path.decode()


def test_scripts_with_a_shebang_are_executable_in_git():
    missing = []
    for mode, rel in _tracked_modes():
        if mode != "100644":  # 100755 executable, 120000 symlink, 160000 submodule
            continue
        path = REPO_ROOT / rel
        if not path.is_file():
            continue
        with open(path, "rb") as f:
            if f.read(2) == b"#!":
                missing.append(rel)
    assert not missing, (
        f"tracked with a shebang but not executable: {missing}; run "
        "`git update-index --chmod=+x FILE` (and chmod +x)"
    )
