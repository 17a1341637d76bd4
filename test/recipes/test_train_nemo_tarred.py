"""train.py --nemo-tarred-manifest/--nemo-tarred-audio: a NeMo tarred audio dataset (written by
write_nemo_tarred from the tiny corpus's audio) trains exactly as the equivalent cut manifest
with on-the-fly features (same losses, same weights), skips bad manifest lines naming their line
numbers, resumes mid-epoch exactly, and a missing tar is a one-line error."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_train_shar import _loss_curve
from test_train_synth import WORDS, _assert_same_training_state, _env, _load, _run, _train_cmd


def _write_audio_split(root: Path, split: str, num_cuts: int, seed: int, order=None) -> list:
    """``data/fbank/synth_cuts_<split>.jsonl.gz``: cuts over 16 kHz wav files (no features),
    written in ``order`` (indices) when given; returns the cuts in index order."""
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    rng = np.random.default_rng(seed)
    audio_dir = root / "data" / "audio" / split
    audio_dir.mkdir(parents=True)
    cuts = []
    for i in range(num_cuts):
        cut_id = f"{split}-{i:03d}"
        t = np.arange(int(rng.uniform(1.2, 2.4) * 16000)) / 16000
        samples = 0.1 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t)
        samples += 0.01 * rng.standard_normal(t.shape)
        path = audio_dir / f"{cut_id}.wav"
        sf.write(str(path), samples.astype(np.float32), 16000, subtype="PCM_16")
        recording = Recording.from_file(path, recording_id=cut_id)
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
        supervision = SupervisionSegment(
            id=cut_id, recording_id=cut_id, start=0.0, duration=recording.duration, text=text
        )
        cuts.append(
            MonoCut(
                id=cut_id,
                start=0.0,
                duration=recording.duration,
                channel=0,
                recording=recording,
                supervisions=[supervision],
            )
        )
    order = range(num_cuts) if order is None else order
    CutSet.from_cuts([cuts[i] for i in order]).to_file(
        root / "data" / "fbank" / f"synth_cuts_{split}.jsonl.gz"
    )
    return cuts


# write_nemo_tarred puts recording k in shard k % 2, and the reader streams shard 0, then
# shard 1: the equivalent cut manifest lists the cuts in that order.
NUM_TRAIN = 24
TAR_ORDER = list(range(0, NUM_TRAIN, 2)) + list(range(1, NUM_TRAIN, 2))
GONE = {"audio_filepath": "gone.wav", "duration": 1.5, "text": "ALPHA", "shard_id": 0}
BAD_LINES = {  # line number in the tarred manifest -> (line, the reason logged)
    3: (json.dumps(GONE), "missing file"),
    9: ("{not json", "invalid JSON"),
}


@pytest.fixture(scope="module")
def audio_corpus(tmp_path_factory) -> dict:
    """The recipe folder (train and dev cuts over wav files, lang_bpe_30) and its training
    split as a 2-shard NeMo tarred set whose manifest has two bad lines."""
    from icefall_lite.data import train_bpe_model
    from icefall_lite.data.nemo_tarred import write_nemo_tarred

    root = tmp_path_factory.mktemp("tarred_recipe")
    (root / "data" / "fbank").mkdir(parents=True)
    train = _write_audio_split(root, "train", NUM_TRAIN, seed=1, order=TAR_ORDER)
    dev = _write_audio_split(root, "dev", 6, seed=2)
    transcripts = root / "data" / "transcripts.txt"
    texts = [c.supervisions[0].text for c in train + dev]
    transcripts.write_text("\n".join(texts + WORDS) + "\n")
    train_bpe_model(transcripts, root / "data" / "lang_bpe_30", vocab_size=30)

    tarred = root / "data" / "tarred"
    tars = write_nemo_tarred(train, tarred, num_shards=2)
    manifest = tarred / "tarred_audio_manifest.json"
    lines = manifest.read_text().splitlines()
    for number in sorted(BAD_LINES):
        lines.insert(number - 1, BAD_LINES[number][0])
    manifest.write_text("\n".join(lines) + "\n")
    assert len(tars) == 2 and len(lines) == NUM_TRAIN + len(BAD_LINES)
    return {"root": root, "manifest": manifest, "audio": str(tarred / "audio_{0..1}.tar")}


def _tarred_flags(corpus: dict) -> list:
    return [
        "--nemo-tarred-manifest",
        str(corpus["manifest"]),
        "--nemo-tarred-audio",
        corpus["audio"],
    ]


@pytest.fixture(scope="module")
def runs(audio_corpus, tmp_path_factory) -> dict:
    """One epoch from the cut manifest (fbank on the fly) and one from the tarred set."""
    root, out = audio_corpus["root"], tmp_path_factory.mktemp("tarred_runs")
    common = ("--num-epochs", "1", "--on-the-fly-feats", "1")
    _run(_train_cmd(root, out / "cuts", *common), root)
    result = _run(_train_cmd(root, out / "tarred", *common, *_tarred_flags(audio_corpus)), root)
    return {"cuts": out / "cuts", "tarred": out / "tarred", "stderr": result.stderr}


def test_training_from_nemo_tarred_gives_the_same_losses(runs):
    assert "Training on the NeMo tarred set" in runs["stderr"]
    curve = _loss_curve(runs["cuts"])
    assert len(curve) >= 2 and all(frames > 0 for _, _, frames in curve)
    assert _loss_curve(runs["tarred"]) == curve
    a, b = _load(runs["cuts"] / "epoch-1.pt"), _load(runs["tarred"] / "epoch-1.pt")
    assert (a["train_loss"], a["valid_loss"]) == (b["train_loss"], b["valid_loss"])
    _assert_same_training_state(a, b)


def test_bad_tarred_lines_are_skipped_with_their_line_numbers(audio_corpus, runs):
    for number, (_, reason) in BAD_LINES.items():
        assert f"{audio_corpus['manifest']}:{number}: {reason}:" in runs["stderr"]
    assert f"{audio_corpus['manifest']}: kept {NUM_TRAIN}, skipped {len(BAD_LINES)}" in (
        runs["stderr"]
    )


def test_missing_tar_is_a_one_line_error(audio_corpus, tmp_path):
    root = audio_corpus["root"]
    missing = str(tmp_path / "audio_{0..1}.tar")
    flags = [
        "--nemo-tarred-manifest",
        str(audio_corpus["manifest"]),
        "--nemo-tarred-audio",
        missing,
    ]
    result = subprocess.run(
        _train_cmd(root, tmp_path / "exp", *flags),
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "train.py: error: --nemo-tarred-manifest/--nemo-tarred-audio: NeMo tar shard(s) not "
        f"found: {tmp_path / 'audio_0.tar'}, {tmp_path / 'audio_1.tar'}"
    ]


@pytest.mark.slow
def test_resume_from_nemo_tarred_mid_epoch_is_exact(audio_corpus, runs, tmp_path):
    root, full = audio_corpus["root"], runs["tarred"]
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(full / "checkpoint-2.pt", resumed / "checkpoint-2.pt")
    flags = ("--num-epochs", "1", "--on-the-fly-feats", "1", "--start-batch", "2")
    result = _run(_train_cmd(root, resumed, *flags, *_tarred_flags(audio_corpus)), root)
    assert f"Resuming from {resumed / 'checkpoint-2.pt'}" in result.stderr
    _assert_same_training_state(_load(full / "epoch-1.pt"), _load(resumed / "epoch-1.pt"))
    assert torch.equal(
        torch.tensor([c[1] for c in _loss_curve(full) if c[0] > 2]),
        torch.tensor([c[1] for c in _loss_curve(resumed) if c[0] > 2]),
    )
