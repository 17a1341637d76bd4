"""A tiny corpus made in a temp dir: tone-and-noise audio, transcripts, fbank features."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

WORDS = "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE ZERO HELLO WORLD".split()


def make_corpus(root: Path, num: int, seed: int = 0) -> CutSet:
    """``num`` recordings of 1-3 s with transcripts, as cuts (no features)."""
    rng = np.random.default_rng(seed)
    audio_dir = root / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    recordings, supervisions = [], []
    for index in range(num):
        seconds = float(rng.uniform(1.0, 3.0))
        t = np.arange(int(seconds * 16000)) / 16000
        samples = 0.1 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t)
        samples += 0.01 * rng.standard_normal(t.shape)
        path = audio_dir / f"utt{index:03d}.wav"
        sf.write(str(path), samples.astype(np.float32), 16000, subtype="PCM_16")
        recording = Recording.from_file(path, recording_id=f"utt{index:03d}")
        recordings.append(recording)
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
        supervisions.append(
            SupervisionSegment(
                id=recording.id,
                recording_id=recording.id,
                start=0.0,
                duration=recording.duration,
                text=text,
                speaker=f"spk{index % 3}",
            )
        )
    return CutSet.from_manifests(
        recordings=RecordingSet.from_recordings(recordings),
        supervisions=SupervisionSet.from_segments(supervisions),
    ).trim_to_supervisions()


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A manifest dir with ``tiny_cuts_train.jsonl.gz`` (40 cuts, fbank) and noise cuts."""
    from icefall_lite.data.features import compute_fbank_for_cuts

    root = tmp_path_factory.mktemp("tiny_corpus")
    cuts = make_corpus(root, 40)
    fbank_dir = root / "fbank"
    compute_fbank_for_cuts(
        cuts, fbank_dir / "tiny_feats_train", fbank_dir / "tiny_cuts_train.jsonl.gz", num_jobs=1
    )
    noise = make_corpus(root / "noise", 4, seed=1).drop_supervisions()
    compute_fbank_for_cuts(
        noise, fbank_dir / "tiny_feats_noise", fbank_dir / "tiny_cuts_noise.jsonl.gz", num_jobs=1
    )
    return fbank_dir


@pytest.fixture(scope="session")
def corpus_maker():
    """:func:`make_corpus` for tests that make their own small corpus."""
    return make_corpus
