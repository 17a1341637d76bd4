"""Shared pytest set-up: tests run on CPU with few threads so the suite fits two cores."""

import os
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

torch.set_num_threads(int(os.environ.get("ICEFALL_LITE_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _keep_omp_wait_policy():
    """A recipe's train.py chooses OMP_WAIT_POLICY for its process when it is imported (PASSIVE
    if the cores are busy); a test that loads one in-process must not leave that choice to the
    tests after it."""
    before = os.environ.get("OMP_WAIT_POLICY")
    yield
    if before is None:
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = before
