"""egs/synth/ASR/prepare.sh stages 8 (your own NeMo manifests) and 9 (Shar shards) on a tiny
manifest; the synth stages 0-7 are not run (--stage 8)."""

import gzip
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from test_prepare_synth import count_lines, run_prepare

WORDS = "one two three four five six seven eight nine zero hello world".split()


def _manifest(root: Path, name: str, num: int, seed: int) -> Path:
    """``num`` lines: wav files in <root>/wav/<name>/ (relative paths), the last two lines bad
    (a missing file and an empty text)."""
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(num):
        seconds = float(rng.uniform(1.2, 2.0))
        path = root / "wav" / name / f"{index:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), 0.1 * rng.standard_normal(int(seconds * 16000)), 16000)
        text = " ".join(rng.choice(WORDS, size=3))
        lines.append(
            {"audio_filepath": f"wav/{name}/{index:03d}.wav", "duration": seconds, "text": text}
        )
    lines.append({"audio_filepath": "wav/none.wav", "duration": 1.0, "text": "gone"})
    lines.append({"audio_filepath": f"wav/{name}/000.wav", "duration": 1.0, "text": ""})
    manifest = root / f"{name}.json"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def test_prepare_nemo_manifest_and_shar_stages(tmp_path):
    user = tmp_path / "user"
    train, dev = _manifest(user, "train", 12, seed=1), _manifest(user, "dev", 3, seed=2)
    work = tmp_path / "recipe"
    work.mkdir()
    args = [
        "--stage",
        "8",
        "--nemo-manifest",
        str(train),
        "--nemo-manifest-dev",
        str(dev),
        "--vocab-size",
        "30",
        "--nj",
        "1",
        "--shar",
        "true",
        "--shar-shard-size",
        "5",
    ]
    result = run_prepare(work, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert f"{train}:13: missing file:" in log and f"{train}:14: empty text:" in log
    fbank = work / "data" / "fbank"
    assert count_lines(fbank / "nemo_cuts_train.jsonl.gz") == 12
    assert count_lines(fbank / "nemo_cuts_dev.jsonl.gz") == 3
    with gzip.open(fbank / "nemo_cuts_train.jsonl.gz", "rt") as f:
        cut = json.loads(f.readline())
    assert cut["features"]["num_features"] == 80
    assert (work / "data" / "lang_bpe_30_nemo" / "bpe.model").is_file()
    shar = work / "data" / "shar" / "nemo_train"
    assert (shar / "shar.json").is_file() and len(list(shar.glob("features.*.tar"))) == 3
    assert (work / "data" / ".stage8.done").is_file() and (work / "data" / ".stage9.done").is_file()
    # The synth stages did not run.
    assert not (work / "data" / ".stage7.done").exists()

    # Without --nemo-manifest-dev: a one-line error, nothing run.
    result = run_prepare(tmp_path / "recipe", "--stage", "8", "--nemo-manifest", str(train))
    assert result.returncode != 0 and "--nemo-manifest-dev" in result.stderr

    # --nemo-strict true: the first bad line is an error naming it.
    strict = tmp_path / "strict"
    strict.mkdir()
    result = run_prepare(
        strict,
        "--stage",
        "8",
        "--stop-stage",
        "8",
        "--nemo-manifest",
        str(train),
        "--nemo-manifest-dev",
        str(dev),
        "--nemo-strict",
        "true",
    )
    assert result.returncode != 0 and f"{train}:13: missing file:" in result.stderr
