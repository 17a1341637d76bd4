#!/usr/bin/env python3
"""Generate the utterances (what to say, who says it) for the synthetic splits.

Usage:
  ./local/make_text.py --seed 42 --num-train 4000 --num-dev 200 --num-test-synth 200 \\
      --human-transcripts data/local/test-human.txt --out-dir data/local

Writes ``<out-dir>/<split>.tsv`` for train, dev and test-synth with the columns
``utt_id  speaker  engine  voice  rate  pitch  speak_text  transcript``: ``speak_text`` is what the
engine reads (letters written "A, B, C" so they are read as letter names), ``transcript`` the
spoken-form reference (upper case, numbers as words).

Utterance kinds: digit strings, numbers, dates and times, spelled letters and the NATO alphabet,
telephone-menu phrases, and general English sentences from the ``fortunes`` package's files.
Deterministic for a given ``--seed``. No transcript of test-synth or of the human test set
(``--human-transcripts``, one per line) may appear in train or dev: such sentences are
regenerated, and the script checks the final files and fails if one slipped through.
"""

import argparse
import csv
import logging
import random
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Set, Tuple

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))

from voices import TEST_VOICES, TRAIN_VOICES, Voice  # noqa: E402

from icefall_lite.data.transcripts import (  # noqa: E402
    digits_to_words,
    is_speakable,
    number_to_words,
    ordinal_to_words,
    to_spoken_transcript,
    year_to_words,
)

FORTUNES_DIR = Path("/usr/share/games/fortunes")
# Fortune files of ordinary prose; the others are mostly code, ASCII art or non-English.
FORTUNE_FILES = (
    "fortunes literature wisdom people humorists love men-women platitudes education food "
    "work science pets kids miscellaneous medicine law politics sports magic news riddles "
    "songs-poems goedel"
).split()

MONTHS = (
    "january february march april may june july august september october november december"
).split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
NATO = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey x-ray yankee zulu"
).split()
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Telephone-menu phrases, written for this generator (slots in braces).
MENU_TEMPLATES = [
    "for {service} press {digit}",
    "to reach {service} please press {digit}",
    "if you are calling about {service} press {digit} now",
    "please enter your {thing} and then press {key}",
    "please type your {thing} followed by {key}",
    "the {thing} you entered is not valid",
    "you have {count} new {message_word}",
    "you have no new {message_word}",
    "your call is being transferred to {service}",
    "please hold while we connect you to {service}",
    "all of our {agents} are helping other callers",
    "your estimated wait time is {count} minutes",
    "press {key} to return to the main menu",
    "to hear these options again press {key}",
    "to leave a message for {service} press {digit}",
    "the extension you dialed is {extension}",
    "your account balance is {count} dollars",
    "your appointment is on {weekday} at {time}",
    "thank you for calling {company}",
    "our office is open from {time} to {time2}",
    "please say or enter your {thing}",
    "sorry I did not understand that",
    "to repeat this message press {digit}",
    "that option is not available please try again",
]
MENU_SLOTS: Dict[str, Sequence[str]] = {
    "service": (
        "billing",
        "technical support",
        "sales",
        "the front desk",
        "customer care",
        "shipping",
        "the pharmacy",
        "reservations",
        "the help desk",
        "account services",
        "returns",
        "the operator",
    ),
    "thing": (
        "account number",
        "member number",
        "pin",
        "zip code",
        "date of birth",
        "order number",
        "access code",
        "room number",
        "card number",
        "mailbox number",
    ),
    "key": ("the pound key", "the star key", "pound", "star", "the hash key"),
    "message_word": ("messages", "voice messages", "saved messages", "urgent messages"),
    "agents": ("agents", "representatives", "staff", "team members"),
    "company": (
        "northwind traders",
        "blue river bank",
        "city hospital",
        "green valley clinic",
        "acme insurance",
        "harbor hotel",
        "maple street dental",
    ),
    "weekday": WEEKDAYS,
}


def spoken_time(rng: random.Random) -> str:
    hour = rng.randint(1, 12)
    minute = rng.choice([0, 0, 5, 10, 15, 20, 30, 45, rng.randint(1, 59)])
    if minute == 0:
        return f"{number_to_words(hour)} o'clock"
    if minute < 10:
        return f"{number_to_words(hour)} oh {number_to_words(minute)}"
    return f"{number_to_words(hour)} {number_to_words(minute)}"


def _words(text: str) -> Tuple[str, str]:
    """Plain words: the engine reads them as they are."""
    return text, to_spoken_transcript(text)


def gen_digits(rng: random.Random) -> Tuple[str, str]:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 10)))
    words = digits_to_words(digits)
    prefix = rng.choice(["", "", "my number is ", "the code is ", "call ", "dial ", "pin "])
    return _words(prefix + words)


def gen_number(rng: random.Random) -> Tuple[str, str]:
    number = rng.choice(
        [rng.randint(0, 20), rng.randint(21, 99), rng.randint(100, 999), rng.randint(1000, 99999)]
    )
    template = rng.choice(
        [
            "{n}",
            "{n} dollars",
            "{n} percent",
            "it costs {n} dollars",
            "about {n} people came",
            "page {n}",
            "the total is {n}",
            "room {n}",
            "{n} miles to go",
        ]
    )
    return _words(template.format(n=number_to_words(number)))


def gen_date(rng: random.Random) -> Tuple[str, str]:
    month = rng.choice(MONTHS)
    day = ordinal_to_words(rng.randint(1, 28))
    year = year_to_words(rng.randint(1950, 2030))
    template = rng.choice(
        [
            "{month} {day}",
            "{month} {day} {year}",
            "on {weekday} {month} {day}",
            "the {day} of {month}",
            "born on {month} {day} {year}",
            "the meeting is on {weekday} at {time}",
            "at {time}",
            "it is {time}",
            "{weekday} at {time}",
        ]
    )
    text = template.format(
        month=month, day=day, year=year, weekday=rng.choice(WEEKDAYS), time=spoken_time(rng)
    )
    return _words(text)


def gen_letters(rng: random.Random) -> Tuple[str, str]:
    if rng.random() < 0.5:
        letters = [rng.choice(LETTERS) for _ in range(rng.randint(2, 7))]
        prefix = rng.choice(["", "", "spelled ", "the code is ", "my initials are "])
        # Commas and capitals make every engine read letter names ("A" as "ay", not "uh").
        speak = prefix + ", ".join(letters) + "."
        transcript = to_spoken_transcript(prefix) + " " + " ".join(letters)
        return speak, transcript.strip()
    words = [rng.choice(NATO) for _ in range(rng.randint(2, 6))]
    return _words(" ".join(words))


def gen_menu(rng: random.Random) -> Tuple[str, str]:
    template = rng.choice(MENU_TEMPLATES)
    values = {name: rng.choice(options) for name, options in MENU_SLOTS.items()}
    values["digit"] = number_to_words(rng.randint(0, 9))
    values["count"] = number_to_words(rng.randint(1, 30))
    values["extension"] = digits_to_words(str(rng.randint(100, 9999)))
    values["time"] = spoken_time(rng)
    values["time2"] = spoken_time(rng)
    return _words(template.format(**values))


def load_sentences(min_words: int = 3, max_words: int = 16) -> List[str]:
    """English sentences from the fortune files, in a fixed order (sorted, deduplicated)."""
    if not FORTUNES_DIR.is_dir():
        sys.exit(
            f"make_text.py: {FORTUNES_DIR} not found (general English text): "
            f"apt-get install -y fortunes"
        )
    sentences: Set[str] = set()
    for name in FORTUNE_FILES:
        path = FORTUNES_DIR / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for entry in text.split("\n%\n"):
            # Attribution lines ("-- Mark Twain") and indented verse/code are not sentences.
            lines = [
                line
                for line in entry.splitlines()
                if line.strip() and not line.lstrip().startswith(("--", ">", "|"))
            ]
            body = " ".join(line.strip() for line in lines)
            for sentence in re.split(r"(?<=[.!?])\s+", body):
                if re.search(r"[^A-Za-z0-9 ,.;:!?'\"-]", sentence):
                    continue  # symbols, foreign letters, markup: skip rather than guess
                if re.search(r"\d", sentence):
                    continue  # numbers in prose are ambiguous to read; the generators cover them
                words = sentence.split()
                if min_words <= len(words) <= max_words and sentence[:1].isupper():
                    sentences.add(sentence.strip())
    if not sentences:
        sys.exit(
            f"make_text.py: no usable sentences in {FORTUNES_DIR}: apt-get install -y fortunes"
        )
    return sorted(sentences)


def make_sentence_generator(sentences: List[str]) -> Callable[[random.Random], Tuple[str, str]]:
    def gen_sentence(rng: random.Random) -> Tuple[str, str]:
        sentence = rng.choice(sentences)
        return sentence, to_spoken_transcript(sentence)

    return gen_sentence


def make_utterances(
    rng: random.Random,
    num: int,
    voices: Sequence[Voice],
    generators: Sequence[Tuple[Callable, float]],
    split: str,
    forbidden: Set[str],
) -> List[List[str]]:
    """``num`` rows ``[utt_id, speaker, engine, voice, rate, pitch, speak_text, transcript]``."""
    functions = [g for g, _ in generators]
    weights = [w for _, w in generators]
    rows = []
    rejected = 0
    while len(rows) < num:
        generator = rng.choices(functions, weights)[0]
        speak, transcript = generator(rng)
        if not is_speakable(transcript) or transcript in forbidden:
            rejected += 1
            continue
        voice = rng.choice(voices)
        rate, pitch = voice.sample_prosody(rng)
        utt_id = f"{split}-{voice.speaker}-{len(rows):06d}"
        rows.append(
            [utt_id, voice.speaker, voice.engine, voice.name, f"{rate:.3f}", f"{pitch:.3f}"]
            + [speak, transcript]
        )
    logging.info(f"{split}: {num} utterances ({rejected} generated sentences rejected)")
    return rows


def write_tsv(rows: List[List[str]], path: Path) -> None:
    tmp = path.with_name(".tmp." + path.name)
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerows(rows)
    tmp.replace(path)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=42, help="Random seed (same seed, same text).")
    parser.add_argument("--num-train", type=int, default=4000, help="Training utterances.")
    parser.add_argument("--num-dev", type=int, default=200, help="Dev utterances (train voices).")
    parser.add_argument(
        "--num-test-synth", type=int, default=200, help="Test utterances with held-out voices."
    )
    parser.add_argument(
        "--human-transcripts",
        type=Path,
        required=True,
        help="Normalised transcripts of the human test set, one per line (kept out of train/dev).",
    )
    parser.add_argument("--out-dir", type=Path, default=Path("data/local"), help="Output folder.")
    return parser


def main() -> None:
    args = get_parser().parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [make_text] %(message)s", level="INFO")
    if not args.human_transcripts.is_file():
        sys.exit(
            f"make_text.py: --human-transcripts {args.human_transcripts} not found "
            f"(made by the human test-set stage of prepare.sh)"
        )
    human = {
        line.strip()
        for line in args.human_transcripts.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    sentences = load_sentences()
    logging.info(f"{len(sentences)} English sentences from {FORTUNES_DIR}")
    generators = [
        (gen_digits, 0.14),
        (gen_number, 0.10),
        (gen_date, 0.10),
        (gen_letters, 0.10),
        (gen_menu, 0.16),
        (make_sentence_generator(sentences), 0.40),
    ]
    # Separate streams per split so that changing one split's size leaves the others alone.
    test_rows = make_utterances(
        random.Random(f"{args.seed}-test-synth"),
        args.num_test_synth,
        TEST_VOICES,
        generators,
        "test-synth",
        forbidden=human,
    )
    forbidden = human | {row[-1] for row in test_rows}
    train_rows = make_utterances(
        random.Random(f"{args.seed}-train"),
        args.num_train,
        TRAIN_VOICES,
        generators,
        "train",
        forbidden,
    )
    dev_rows = make_utterances(
        random.Random(f"{args.seed}-dev"), args.num_dev, TRAIN_VOICES, generators, "dev", forbidden
    )
    # The check the recipe promises, done on the rows about to be written.
    leaked = {row[-1] for row in train_rows + dev_rows} & forbidden
    if leaked:
        sys.exit(
            f"make_text.py: {len(leaked)} test sentences in train/dev, e.g. {sorted(leaked)[:3]}"
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train_rows), ("dev", dev_rows), ("test-synth", test_rows)):
        write_tsv(rows, args.out_dir / f"{split}.tsv")
    logging.info(f"Checked: none of the {len(forbidden)} test transcripts occurs in train or dev")


if __name__ == "__main__":
    main()
