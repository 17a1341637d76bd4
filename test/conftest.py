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
    """Recipe scripts loaded in-process (decode.py, train.py, ...) set OMP_WAIT_POLICY=PASSIVE
    at import when the machine is busy; undo it so no test's result depends on the load."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    yield
    if policy is None:
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = policy
