"""Text normalisation used before comparing hypotheses with references.

The normal form is: upper case, punctuation removed, words separated by single spaces.
Numbers stay as written ("3.5", "1,000", "10:30" and "TWENTY ONE" are all left as they are:
no digit/word conversion is attempted, because it is ambiguous and dataset specific).
Apostrophes inside words are kept ("DON'T", "JAMES'S"); typographic apostrophes become "'".
Hyphens and other joining punctuation split words ("WELL-KNOWN" -> "WELL KNOWN"), the
LibriSpeech convention.
"""

import re
import unicodedata
from typing import Iterable, List

__all__ = ["normalize_text", "normalize_words", "strip_punctuation", "upper_case"]

# Punctuation that sits between two digits belongs to the number ("3.5", "1,000", "10:30").
_NUMBER_INNER_PUNCTUATION = ".,:"
_APOSTROPHES = "'\u2019\u2018\u02bc"


def upper_case(text: str) -> str:
    """Upper-case ``text`` (Unicode aware)."""
    return text.upper()


def strip_punctuation(text: str) -> str:
    """Replace punctuation by spaces, keeping word-internal apostrophes and number punctuation.

    A character counts as punctuation when its Unicode category starts with ``P``; symbols
    such as ``$``, ``%`` or ``+`` are kept. Runs of white space collapse to one space.
    """
    chars = list(text)
    kept = []
    for i, char in enumerate(chars):
        if not unicodedata.category(char).startswith("P"):
            kept.append(char)
            continue
        before = chars[i - 1] if i > 0 else ""
        after = chars[i + 1] if i + 1 < len(chars) else ""
        if char in _APOSTROPHES and before.isalnum() and after.isalnum():
            kept.append("'")
        elif char in _NUMBER_INNER_PUNCTUATION and before.isdigit() and after.isdigit():
            kept.append(char)
        else:
            kept.append(" ")
    return re.sub(r"\s+", " ", "".join(kept)).strip()


def normalize_text(text: str) -> str:
    """Upper case, no punctuation, single spaces: ``"Hello, world!"`` -> ``"HELLO WORLD"``."""
    return upper_case(strip_punctuation(text))


def normalize_words(words: Iterable[str]) -> List[str]:
    """Normalise a word list; a word may split in two ("WELL-KNOWN") or vanish ("--")."""
    return normalize_text(" ".join(words)).split()
