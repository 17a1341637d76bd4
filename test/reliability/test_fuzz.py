"""A small seeded fuzz of decode.py and pretrained.py: randomly corrupted manifests, wavs and
flag values. Every case must end with exit status 1 and one line ``<script>: error: ...`` (or,
for a wav that is still audio, a transcript), never a traceback.

Seeded and bounded (FUZZ_CASES each); a case that fails prints its seed and corruption, so it
can be replayed and turned into a probe of its own.
"""

import gzip
import json
import random
from pathlib import Path

import pytest
from conftest import assert_one_line_error, decode_args, run_script

FUZZ_CASES = 12
SEED = 18

BAD_INT = ["0", "-3", "x", "2.5", ""]
DECODE_FLAG_VALUES = {
    "--beam-size": BAD_INT,
    "--max-contexts": BAD_INT,
    "--max-states": BAD_INT,
    "--max-sym-per-frame": BAD_INT,
    "--num-paths": BAD_INT,
    "--avg": BAD_INT,
    "--epoch": ["x", "-1", "0", "99"],
    "--iter": ["x", "7"],
    "--max-duration": ["-1", "0", "abc"],
    "--num-workers": ["-1", "x"],
    "--decoding-method": ["x", "GREEDY"],
    "--beam": ["-1", "0", "nan?"],
    "--nbest-scale": ["0", "-0.5"],
    "--use-averaged-model": ["maybe", "2"],
    "--test-sets": ["nope", "dev,nope"],
    "--context-size": ["7"],
}


def _corrupt_manifest(rng: random.Random, source: Path, target: Path) -> str:
    """Write a corrupted copy of a .jsonl.gz cut manifest; returns what was done."""
    data = source.read_bytes()
    kind = rng.choice(["truncate", "flip", "drop_key", "garbage_line", "bad_storage"])
    if kind == "truncate":
        target.write_bytes(data[: rng.randrange(1, len(data) - 1)])
        return kind
    if kind == "flip":
        blob = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            blob[rng.randrange(10, len(blob))] ^= 1 << rng.randrange(8)
        target.write_bytes(bytes(blob))
        return kind
    lines = gzip.decompress(data).decode().splitlines()
    i = rng.randrange(len(lines))
    if kind == "garbage_line":
        lines.insert(i, rng.choice(["{", "[]", "null", '{"id": 3}', "\x00\x01"]))
    else:
        cut = json.loads(lines[i])
        if kind == "drop_key":
            key = rng.choice(["id", "duration", "supervisions", "features", "start"])
            if key == "supervisions":
                cut[key] = []
            else:
                cut.pop(key, None)
        else:
            cut["features"]["storage_path"] += ".gone"
        lines[i] = json.dumps(cut)
        kind += f" (line {i})"
    target.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return kind


def _cases(n: int):
    rng = random.Random(SEED)
    return [rng.randrange(10**6) for _ in range(n)]


@pytest.mark.parametrize("seed", _cases(FUZZ_CASES))
def test_decode_with_a_corrupted_manifest(recipe_dir, tmp_path, capsys, seed):
    rng = random.Random(seed)
    fbank = tmp_path / "fbank"
    fbank.mkdir()
    what = _corrupt_manifest(
        rng,
        Path(recipe_dir["manifest_dir"]) / "synth_cuts_dev.jsonl.gz",
        fbank / "synth_cuts_dev.jsonl.gz",
    )
    outcome = run_script("decode", decode_args(recipe_dir, "--manifest-dir", str(fbank)), capsys)
    if what.startswith("drop_key") and outcome.status == 0:
        return  # a key lhotse has a default for ("start"): still a valid manifest
    assert_one_line_error(outcome, "decode.py")
    assert "synth_cuts_dev" in outcome.last_line, (seed, what, outcome.last_line)


@pytest.mark.parametrize("seed", _cases(FUZZ_CASES))
def test_decode_with_bad_flag_values(recipe_dir, capsys, seed):
    rng = random.Random(seed)
    flags = []
    for flag in rng.sample(sorted(DECODE_FLAG_VALUES), rng.randint(1, 3)):
        flags += [flag, rng.choice(DECODE_FLAG_VALUES[flag])]
    if "--beam-size" in flags:
        flags += ["--decoding-method", "modified_beam_search"]
    outcome = run_script("decode", decode_args(recipe_dir, *flags), capsys)
    assert_one_line_error(outcome, "decode.py")


def _corrupt_wav(rng: random.Random, source: Path, target: Path) -> str:
    data = bytearray(source.read_bytes())
    kind = rng.choice(["truncate", "header_flip", "random_bytes", "empty", "header_only"])
    if kind == "truncate":
        data = data[: rng.randrange(1, len(data))]
    elif kind == "header_flip":
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(0, 44)] ^= 1 << rng.randrange(8)
    elif kind == "random_bytes":
        data = bytearray(rng.randbytes(rng.randint(1, 4000)))
    elif kind == "empty":
        data = bytearray()
    else:
        data = data[:44]
    target.write_bytes(bytes(data))
    return kind


@pytest.mark.parametrize("seed", _cases(FUZZ_CASES))
def test_pretrained_with_a_corrupted_wav_and_flags(
    pretrained_file, tokens_file, wav_file, tmp_path, capsys, seed
):
    """A corrupted wav alone is reported by name (exit 1) or, still being audio, transcribed;
    a bad flag or a truncated --checkpoint besides it is one line."""
    rng = random.Random(seed)
    wav = tmp_path / "fuzzed.wav"
    what = _corrupt_wav(rng, wav_file, wav)
    flags, bad_input = [], False
    if rng.random() < 0.5:
        flags = [
            rng.choice(["--beam-size", "--max-sym-per-frame", "--num-threads", "--sample-rate"]),
            rng.choice(BAD_INT),
        ]
        bad_input = True
    checkpoint = pretrained_file
    if rng.random() < 0.3:
        checkpoint = tmp_path / "pretrained.pt"
        data = pretrained_file.read_bytes()
        checkpoint.write_bytes(data[: rng.randrange(1, len(data))])
        bad_input = True
    outcome = run_script(
        "pretrained",
        [
            "--checkpoint",
            str(checkpoint),
            "--tokens",
            str(tokens_file),
            *flags,
            "--decoding-method",
            "modified_beam_search",
            str(wav),
        ],
        capsys,
    )
    context = (seed, what, flags, checkpoint.name, outcome.stderr[-2000:])
    assert "Traceback" not in outcome.stderr, context
    if bad_input:
        assert_one_line_error(outcome, "pretrained.py")
    else:
        assert outcome.status in (0, 1), context
        if outcome.status == 1:
            assert f"{wav}:\n<unreadable" in outcome.stdout, context
