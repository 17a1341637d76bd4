import pytest

from icefall_lite.data.transcripts import (
    digits_to_words,
    is_speakable,
    number_to_words,
    ordinal_to_words,
    to_spoken_transcript,
    year_to_words,
)


@pytest.mark.parametrize(
    "number, words",
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (427, "four hundred twenty seven"),
        (1000, "one thousand"),
        (20014, "twenty thousand fourteen"),
        (3_000_001, "three million one"),
    ],
)
def test_number_to_words(number, words):
    assert number_to_words(number) == words


def test_ordinals_years_digits():
    assert [ordinal_to_words(n) for n in (1, 2, 3, 5, 12, 20, 21)] == [
        "first",
        "second",
        "third",
        "fifth",
        "twelfth",
        "twentieth",
        "twenty first",
    ]
    assert year_to_words(1999) == "nineteen ninety nine"
    assert year_to_words(2005) == "two thousand five"
    assert year_to_words(1905) == "nineteen oh five"
    assert digits_to_words("0427") == "zero four two seven"


def test_spoken_transcript():
    assert to_spoken_transcript("Press 1, then #.") == "PRESS ONE THEN POUND"
    assert to_spoken_transcript("At 10:30 or 7:05") == "AT TEN THIRTY OR SEVEN OH FIVE"
    assert to_spoken_transcript("Call-Forward: 1,250 *") == (
        "CALL FORWARD ONE THOUSAND TWO HUNDRED FIFTY STAR"
    )
    assert to_spoken_transcript("Don't stop") == "DON'T STOP"
    assert is_speakable("DON'T STOP") and not is_speakable("") and not is_speakable("ÇA VA")
