#!/usr/bin/env python3
"""Generate the utterances (what to say, who says it) for the synthetic splits.

Usage:
  ./local/make_text.py --seed 42 --num-train 4000 --num-dev 200 --num-test-synth 200 \\
      --human-transcripts data/local/test-human.txt --out-dir data/local

Writes ``<out-dir>/<split>.tsv`` for train, dev and test-synth with the columns
``utt_id  speaker  engine  voice  rate  pitch  speak_text  transcript  effects``: ``speak_text``
is what the engine reads (letters written "A, B, C" so they are read as letter names),
``transcript`` the spoken-form reference (upper case, numbers as words), ``effects`` a sox
effect chain applied after synthesis (train and dev only; see ``voices.sample_effects``).

Utterance kinds: digit strings, numbers, dates and times, spelled letters and the NATO alphabet,
telephone-menu phrases, what voice-mail, conferencing and call-handling systems say, and general
English sentences from the ``fortunes`` package's files.
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

from voices import (  # noqa: E402
    DEFAULT_VTLP,
    PIPER_VOICE_NAME,
    PIPER_VTLP,
    SLOWER_RATE_SCALE,
    TEST_VOICES,
    TRAIN_VOICES,
    Voice,
    sample_effects,
    sample_kokoro_voice,
)

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

# What a voice-mail, conferencing or call-handling system says (written for this generator;
# the text stage drops any sentence that is also a test transcript).
VOICE_SYSTEM_TEMPLATES = [
    "you have {count} new {message_word} and {count2} old {message_word}",
    "to listen to your {message_word} press {digit}",
    "to delete this message press {digit}",
    "to save this message press {digit}",
    "message {ordinal} received {weekday} at {time}",
    "this message has been {action}",
    "your mailbox is {state}",
    "please record your {greeting} after the tone",
    "when you are finished recording press {key}",
    "to {verb} your {setting} press {digit}",
    "your {setting} has been {action}",
    "please enter your {secret} {followed}",
    "the {secret} you entered is incorrect",
    "{secret} {result}",
    "please enter the {thing2} of the person you are trying to reach",
    "the person at extension {extension} is {presence}",
    "the number you have dialed is {unavailable}",
    "your call could not be {completed} please try again later",
    "please stay on the line and an {agent_word} will be with you shortly",
    "you are caller number {count} in the queue",
    "you are the {ordinal} caller waiting",
    "the conference {conf_state}",
    "you are now {conf_user_state}",
    "there are {count} other participants in this conference",
    "you are the only person in this conference",
    "please say your name after the tone {followed}",
    "press {digit} to {conf_action} the conference",
    "to {conf_action} press {digit} or {digit2} to {conf_action2}",
    "{agent_word} {agent_state}",
    "please enter your {agent_word} number {followed}",
    "call forwarding is now {onoff}",
    "{feature} {onoff}",
    "please enter the number to forward your calls to {followed}",
    "the time is now {time}",
    "at the tone the time will be {time}",
    "{greeting_word} you have reached {company}",
    "{greeting_word} and welcome to {company}",
    "if you know the extension of the party you are calling you may dial it now",
    "for a directory of names press {digit}",
    "please spell the last name of the person you wish to reach",
    "to try again press {digit} to cancel press {key}",
    "{short_reply}",
    "{short_reply} {short_reply2}",
    "goodbye",
    "thank you for your patience",
    "please try your call again later",
    "invalid extension please try again",
    "your {thing} is {digits}",
    "you entered {digits} is that correct",
    "if this is correct press {digit} otherwise press {digit2}",
    "that is not a valid {choice_word}",
    "please make your selection now",
    "one moment please while I {transfer_word} your call",
    "the {service} line is {presence} at the moment",
]
VOICE_SYSTEM_SLOTS: Dict[str, Sequence[str]] = {
    "action": ("deleted", "saved", "forwarded", "changed", "recorded", "erased", "restored"),
    "state": ("full", "empty", "almost full", "not set up yet", "locked"),
    "greeting": ("name", "greeting", "busy message", "unavailable message", "temporary greeting"),
    "verb": ("change", "record", "review", "erase", "update", "check"),
    "setting": (
        "password",
        "greeting",
        "name",
        "options",
        "language",
        "schedule",
        "voice mail settings",
    ),
    "secret": ("password", "pin", "access code", "pass code", "security code", "account code"),
    "result": ("accepted", "not accepted", "incorrect", "changed", "expired"),
    "followed": ("followed by pound", "followed by the pound key", "then press star", ""),
    "thing2": ("extension", "mailbox number", "name", "phone number"),
    "presence": ("on the phone", "not available", "busy", "away from the desk", "available"),
    "unavailable": (
        "not in service",
        "busy",
        "not reachable",
        "no longer available",
        "temporarily out of order",
    ),
    "completed": ("completed", "connected", "transferred", "placed"),
    "agent_word": ("agent", "operator", "representative", "attendant"),
    "ordinal": tuple(ordinal_to_words(n) for n in range(1, 13)),
    "conf_state": ("is full", "is locked", "is unlocked", "has ended", "is starting now"),
    "conf_user_state": ("muted", "unmuted", "the first participant", "in the conference"),
    "conf_action": ("mute", "unmute", "lock", "unlock", "leave", "join", "record"),
    "conf_action2": ("exit", "hear the menu", "raise the volume", "lower the volume"),
    "agent_state": ("logged in", "logged out", "is busy", "is not available", "is on a break"),
    "onoff": ("on", "off", "activated", "deactivated", "enabled", "disabled", "cancelled"),
    "feature": (
        "call waiting",
        "do not disturb",
        "call forwarding",
        "caller id",
        "voice mail",
        "call recording",
        "night mode",
    ),
    "greeting_word": ("hello", "hi", "good morning", "good afternoon", "good evening", "welcome"),
    "short_reply": (
        "yes",
        "no",
        "okay",
        "thank you",
        "hello",
        "sorry",
        "cancel",
        "help",
        "main menu",
        "operator",
        "repeat",
        "please hold",
        "try again",
        "goodbye",
        "next",
        "previous",
        "stop",
        "continue",
    ),
    "choice_word": ("choice", "option", "selection", "entry", "number", "extension"),
    "transfer_word": ("transfer", "connect", "route", "forward"),
}
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


def gen_voice_system(rng: random.Random) -> Tuple[str, str]:
    template = rng.choice(VOICE_SYSTEM_TEMPLATES)
    values = {name: rng.choice(options) for name, options in MENU_SLOTS.items()}
    values.update({name: rng.choice(options) for name, options in VOICE_SYSTEM_SLOTS.items()})
    for second in ("short_reply", "conf_action"):
        values[f"{second}2"] = rng.choice(VOICE_SYSTEM_SLOTS[second])
    values["digit"] = number_to_words(rng.randint(0, 9))
    values["digit2"] = number_to_words(rng.randint(0, 9))
    values["count"] = number_to_words(rng.randint(1, 30))
    values["count2"] = number_to_words(rng.randint(0, 30))
    values["extension"] = digits_to_words(str(rng.randint(100, 9999)))
    values["digits"] = digits_to_words(str(rng.randint(0, 99999)))
    values["time"] = spoken_time(rng)
    return _words(" ".join(template.format(**values).split()))


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
    with_effects: bool = False,
    vtlp: Tuple[float, Tuple[float, float]] = DEFAULT_VTLP,
) -> List[List[str]]:
    """``num`` rows ``[utt_id, speaker, engine, voice, rate, pitch, speak_text, transcript,
    effects]``; ``effects`` is a sox effect chain (:func:`voices.sample_effects`, with the
    vocal-tract-length setting ``vtlp``) when ``with_effects``, else empty."""
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
        effects = sample_effects(rng, vtlp) if with_effects else ""
        utt_id = f"{split}-{voice.speaker}-{len(rows):06d}"
        rows.append(
            [utt_id, voice.speaker, voice.engine, voice.name, f"{rate:.3f}", f"{pitch:.3f}"]
            + [speak, transcript, effects]
        )
    logging.info(f"{split}: {num} utterances ({rejected} generated sentences rejected)")
    return rows


def make_kokoro_utterances(
    rng: random.Random,
    num: int,
    copies: int,
    generators: Sequence[Tuple[Callable, float]],
    split: str,
    forbidden: Set[str],
) -> List[List[str]]:
    """``num`` sentences said by Kokoro voices (blends drawn per sentence), each written
    ``copies`` times: the first clean, the others through their own sox effect chains. The
    synthesis stage says each sentence once (rows share voice, rate and text)."""
    rows: List[List[str]] = []
    base_rows = make_utterances(rng, num, [Voice("kokoro", "")], generators, split, forbidden)
    for index, row in enumerate(base_rows):
        voice = sample_kokoro_voice(rng)
        rate = rng.uniform(*voice.rate_range)
        for copy in range(copies):
            effects = sample_effects(rng) if copy > 0 else ""
            utt_id = f"{split}-{voice.speaker}-k{index:05d}-{copy}"
            rows.append(
                [utt_id, voice.speaker, "kokoro", voice.name, f"{rate:.3f}", "1.000"]
                + [row[6], row[7], effects]
            )
    return rows


def make_piper_utterances(
    rng: random.Random,
    num: int,
    generators: Sequence[Tuple[Callable, float]],
    split: str,
    forbidden: Set[str],
    with_effects: bool = True,
) -> List[List[str]]:
    """``num`` sentences said by the Piper voice, each through its own sox chain, with the
    vocal-tract-length effect more often and wider than for the many-voiced engines."""
    voice = Voice("piper", PIPER_VOICE_NAME, rate_range=(0.85, 1.2), pitch_range=(1.0, 1.0))
    return make_utterances(
        rng, num, [voice], generators, split, forbidden, with_effects, vtlp=PIPER_VTLP
    )


def slow_down(rows: List[List[str]], fraction: float) -> List[List[str]]:
    """Multiply the speaking rate of about ``fraction`` of the rows by a factor drawn from
    :data:`voices.SLOWER_RATE_SCALE` (people speak slower than the engines' defaults: the
    human test set has 87 ms of speech per character against 68 for train).

    The choice and the factor come from a hash of the utterance id (without a Kokoro copy's
    suffix, so copies of one sentence keep sharing their rate), not from the split's random
    stream: texts, voices and effects stay exactly those of ``fraction`` 0.
    """
    if fraction <= 0:
        return rows
    slowed = []
    for row in rows:
        sentence_id = re.sub(r"-k(\d+)-\d+$", r"-k\1", row[0])
        draw = random.Random(f"slow-{sentence_id}")
        rate = float(row[4])
        if draw.random() < fraction:
            rate *= draw.uniform(*SLOWER_RATE_SCALE)
        slowed.append(row[:4] + [f"{rate:.3f}"] + row[5:])
    return slowed


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
    parser.add_argument(
        "--num-train-kokoro",
        type=int,
        default=0,
        help="Extra training sentences said by Kokoro-82M voices (neural, ~100x slower to make "
        "than espeak-ng); 0: none.",
    )
    parser.add_argument(
        "--kokoro-copies",
        type=int,
        default=3,
        help="Training utterances made from each Kokoro sentence (one clean, the others with "
        "their own sox effects).",
    )
    parser.add_argument(
        "--num-train-piper",
        type=int,
        default=0,
        help="Extra training sentences said by the Piper voice en_US-joe-medium (neural, "
        "~25x real time per core); 0: none.",
    )
    parser.add_argument(
        "--train-slower-fraction",
        type=float,
        default=0.0,
        help="Fraction of the training utterances (every engine) said slower, their rate "
        "multiplied by 0.65-0.9 (dev and test-synth keep the engines' rates); 0: none.",
    )
    parser.add_argument(
        "--effects",
        type=lambda v: str(v).lower() in ("1", "true", "yes"),
        default=True,
        help="Draw a sox effect chain (vocal-tract length, room, band limit) per train/dev "
        "utterance; test-synth is always clean.",
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
    if not 0.0 <= args.train_slower_fraction <= 1.0:
        sys.exit(
            f"make_text.py: --train-slower-fraction {args.train_slower_fraction}: "
            "must be between 0 and 1"
        )
    human = {
        line.strip()
        for line in args.human_transcripts.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    sentences = load_sentences()
    logging.info(f"{len(sentences)} English sentences from {FORTUNES_DIR}")
    # Weighted towards what people hear from voice systems (the human test set's domain);
    # general English keeps a share so the vocabulary is not only the templates'.
    generators = [
        (gen_digits, 0.12),
        (gen_number, 0.08),
        (gen_date, 0.08),
        (gen_letters, 0.08),
        (gen_menu, 0.16),
        (gen_voice_system, 0.28),
        (make_sentence_generator(sentences), 0.20),
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
    forbidden = human | {row[7] for row in test_rows}
    train_rows = make_utterances(
        random.Random(f"{args.seed}-train"),
        args.num_train,
        TRAIN_VOICES,
        generators,
        "train",
        forbidden,
        with_effects=args.effects,
    )
    dev_rows = make_utterances(
        random.Random(f"{args.seed}-dev"),
        args.num_dev,
        TRAIN_VOICES,
        generators,
        "dev",
        forbidden,
        with_effects=args.effects,
    )
    if args.num_train_kokoro > 0:
        train_rows += make_kokoro_utterances(
            random.Random(f"{args.seed}-train-kokoro"),
            args.num_train_kokoro,
            args.kokoro_copies,
            generators,
            "train",
            forbidden,
        )
    if args.num_train_piper > 0:
        train_rows += make_piper_utterances(
            random.Random(f"{args.seed}-train-piper"),
            args.num_train_piper,
            generators,
            "train",
            forbidden,
            with_effects=args.effects,
        )
    train_rows = slow_down(train_rows, args.train_slower_fraction)
    # The check the recipe promises, done on the rows about to be written.
    leaked = {row[7] for row in train_rows + dev_rows} & forbidden
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
