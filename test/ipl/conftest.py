"""Fixtures of the IPL tests (the corpus itself: ipl_corpus.py)."""

from pathlib import Path
from typing import Dict, Tuple

import pytest
from ipl_corpus import make_corpus


@pytest.fixture(scope="session")
def ipl_corpus(tmp_path_factory) -> Tuple[Path, Dict[str, str]]:
    """(recipe root, hidden transcripts of the unlabeled cuts): 12 labelled, 16 unlabeled and
    6 dev cuts."""
    return make_corpus(tmp_path_factory.mktemp("ipl_corpus"), 12, 16, 6)
