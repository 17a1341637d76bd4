"""Turning written English into the spoken-form transcripts an ASR corpus stores.

A transcript here is what a speaker says, in LibriSpeech's form: upper case, words separated by
single spaces, no punctuation except word-internal apostrophes, numbers written out as words
("10:30" -> "TEN THIRTY", "42" -> "FORTY TWO"). Scoring-time normalisation (case, punctuation)
lives in :mod:`icefall_lite.text`; this module adds the dataset-preparation step that decides how
numbers and symbols are spoken.
"""

import re
from typing import Optional

from icefall_lite.text import normalize_text

__all__ = [
    "number_to_words",
    "digits_to_words",
    "ordinal_to_words",
    "year_to_words",
    "spell_out_numbers",
    "to_spoken_transcript",
    "is_speakable",
]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))

# Symbols a telephone prompt or a sentence may contain, read the way a speaker says them.
_SPOKEN_SYMBOLS = {
    "#": " pound ",
    "*": " star ",
    "&": " and ",
    "%": " percent ",
    "+": " plus ",
    "@": " at ",
}


def number_to_words(number: int) -> str:
    """Read a non-negative integer as a cardinal: ``427`` -> ``"four hundred twenty seven"``.

    American style without "and"; works up to 999,999,999,999.
    """
    if number < 0:
        raise ValueError(f"number_to_words: expected a non-negative integer, got {number}")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for scale, name in _SCALES:
        if number >= scale:
            head, rest = divmod(number, scale)
            words = number_to_words(head) + " " + name
            return words if rest == 0 else words + " " + number_to_words(rest)
    raise AssertionError("unreachable")


def digits_to_words(digits: str) -> str:
    """Read a digit string one digit at a time: ``"0427"`` -> ``"zero four two seven"``."""
    return " ".join(_ONES[int(d)] for d in digits if d.isdigit())


_IRREGULAR_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def ordinal_to_words(number: int) -> str:
    """Read a positive integer as an ordinal: ``21`` -> ``"twenty first"``."""
    words = number_to_words(number).split()
    last = words[-1]
    if last in _IRREGULAR_ORDINALS:
        words[-1] = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_to_words(year: int) -> str:
    """Read a year the way it is spoken: ``1999`` -> ``"nineteen ninety nine"``,
    ``2005`` -> ``"two thousand five"``, ``2023`` -> ``"twenty twenty three"``."""
    if not 1000 <= year <= 9999:
        return number_to_words(year)
    century, rest = divmod(year, 100)
    if century % 10 == 0 and rest < 10:  # 2000, 2005, 1008: "two thousand five"
        return number_to_words(year)
    if rest == 0:  # 1900
        return number_to_words(century) + " hundred"
    rest_words = number_to_words(rest) if rest >= 10 else "oh " + number_to_words(rest)
    return number_to_words(century) + " " + rest_words


def _read_number_token(match: "re.Match[str]") -> str:
    token = match.group(0)
    if ":" in token:  # a clock time: 10:30 -> ten thirty, 7:05 -> seven oh five
        hours, minutes = token.split(":")
        minute_value = int(minutes)
        if minute_value == 0:
            minute_words = "o'clock"
        elif minute_value < 10:
            minute_words = "oh " + _ONES[minute_value]
        else:
            minute_words = number_to_words(minute_value)
        return f" {number_to_words(int(hours))} {minute_words} "
    if token.startswith("0") and len(token) > 1:  # leading zero: a code, read digit by digit
        return f" {digits_to_words(token)} "
    return f" {number_to_words(int(token.replace(',', '')))} "


def spell_out_numbers(text: str) -> str:
    """Replace clock times and integers (``1,000`` allowed) by words; other text is unchanged."""
    return re.sub(r"\d{1,2}:\d{2}|\d{1,3}(?:,\d{3})+|\d+", _read_number_token, text)


def to_spoken_transcript(text: str) -> str:
    """Written English -> transcript: symbols and numbers spoken, upper case, no punctuation.

    ``"Press 1, then #."`` -> ``"PRESS ONE THEN POUND"``.
    """
    for symbol, spoken in _SPOKEN_SYMBOLS.items():
        text = text.replace(symbol, spoken)
    text = spell_out_numbers(text)
    # Hyphens join words in writing only ("Call-Forward"); the speaker says two words.
    text = text.replace("-", " ")
    return normalize_text(text)


def is_speakable(transcript: str, allowed: Optional[str] = None) -> bool:
    """True when ``transcript`` is non-empty and uses only ``allowed`` characters.

    Args:
      transcript: an output of :func:`to_spoken_transcript`.
      allowed: characters allowed besides space; default A-Z and the apostrophe.
    """
    allowed_chars = set(allowed or "ABCDEFGHIJKLMNOPQRSTUVWXYZ'")
    stripped = transcript.replace(" ", "")
    return bool(stripped) and all(char in allowed_chars for char in stripped)
