"""n-gram language models: ARPA reading and scoring, a modified Kneser-Ney trainer writing
ARPA, and the token-level LM the searches fuse (``search/lm_fusion.py``).

KenLM's Python module (``pip install kenlm``) reads the same files; it is not needed here
(the tests use it, when installed, to check that our ARPA files score the same in KenLM).
"""

from icefall_lite.lm.arpa import BOS, EOS, UNK, ArpaError, NgramLm, read_arpa
from icefall_lite.lm.build import build_token_lm
from icefall_lite.lm.kneser_ney import estimate_discounts, train_kneser_ney, write_arpa
from icefall_lite.lm.token_lm import (
    LmVocabularyError,
    TokenNgramLm,
    load_token_lm,
    load_token_lm_fusion,
)

__all__ = [
    "ArpaError",
    "BOS",
    "EOS",
    "LmVocabularyError",
    "NgramLm",
    "TokenNgramLm",
    "UNK",
    "build_token_lm",
    "estimate_discounts",
    "load_token_lm",
    "load_token_lm_fusion",
    "read_arpa",
    "train_kneser_ney",
    "write_arpa",
]
