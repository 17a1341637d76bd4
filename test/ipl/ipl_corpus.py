"""A tiny learnable corpus for the IPL tests: every word is a fixed spectral pattern held for a
few tenths of a second, so a small model learns to transcribe it within a few hundred steps.

Splits (fbank stored with lilcom): ``train`` (labelled), ``unlabeled`` (the same kind of
utterances, supervisions without text; the hidden transcripts are returned), ``dev``.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_PY = REPO_ROOT / "egs" / "synth" / "ASR" / "zipformer" / "train.py"
IPL_LABEL_PY = REPO_ROOT / "egs" / "synth" / "ASR" / "zipformer" / "ipl_label.py"
WORDS = "ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT".split()


def _templates(rng: np.random.Generator) -> Dict[str, np.ndarray]:
    templates = {}
    for index, word in enumerate(WORDS):
        pattern = np.full(80, -6.0, dtype=np.float32)
        start = 3 + 12 * index
        pattern[start : start + 9] = 2.0 + rng.uniform(0, 1, size=9)
        templates[word] = pattern
    return templates


def write_split(
    fbank_dir: Path, name: str, num_cuts: int, seed: int, with_text: bool = True
) -> Dict[str, str]:
    """Write ``synth_cuts_<name>.jsonl.gz``; returns cut id -> transcript."""
    from lhotse import CutSet, MonoCut, SupervisionSegment
    from lhotse.features import Features
    from lhotse.features.io import LilcomChunkyWriter

    templates = _templates(np.random.default_rng(1234))
    rng = np.random.default_rng(seed)
    cuts, texts = [], {}
    with LilcomChunkyWriter(fbank_dir / f"feats_{name}.lca") as writer:
        for i in range(num_cuts):
            cut_id = f"{name}-{i:03d}"
            words = list(rng.choice(WORDS, size=int(rng.integers(3, 5))))
            frames = [np.full((int(rng.integers(16, 22)), 80), -6.0, dtype=np.float32)]
            for word in words:
                frames.append(np.tile(templates[word], (int(rng.integers(22, 30)), 1)))
                frames.append(np.full((int(rng.integers(4, 8)), 80), -6.0, dtype=np.float32))
            features = np.concatenate(frames) + rng.normal(0, 0.4, (sum(map(len, frames)), 80))
            features = features.astype(np.float32)
            num_frames = features.shape[0]
            duration = num_frames / 100
            key = writer.write(cut_id, features)
            text = " ".join(words)
            texts[cut_id] = text
            cuts.append(
                MonoCut(
                    id=cut_id,
                    start=0.0,
                    duration=duration,
                    channel=0,
                    supervisions=[
                        SupervisionSegment(
                            id=cut_id,
                            recording_id=cut_id,
                            start=0.0,
                            duration=duration,
                            text=text if with_text else "",
                        )
                    ],
                    features=Features(
                        type="fbank",
                        num_frames=num_frames,
                        num_features=80,
                        frame_shift=0.01,
                        sampling_rate=16000,
                        start=0.0,
                        duration=duration,
                        storage_type=writer.name,
                        storage_path=str(writer.storage_path),
                        storage_key=key,
                        recording_id=cut_id,
                        channels=0,
                    ),
                )
            )
    CutSet.from_cuts(cuts).to_file(fbank_dir / f"synth_cuts_{name}.jsonl.gz")
    return texts


def make_corpus(root: Path, num_train: int, num_unlabeled: int, num_dev: int) -> Tuple[Path, dict]:
    from icefall_lite.data import train_bpe_model

    fbank_dir = root / "data" / "fbank"
    fbank_dir.mkdir(parents=True)
    train = write_split(fbank_dir, "train", num_train, seed=1)
    hidden = write_split(fbank_dir, "unlabeled", num_unlabeled, seed=2, with_text=False)
    write_split(fbank_dir, "dev", num_dev, seed=3)
    transcripts = root / "data" / "transcripts.txt"
    transcripts.write_text("\n".join(list(train.values()) + WORDS) + "\n")
    train_bpe_model(transcripts, root / "data" / "lang_bpe_20", vocab_size=20)
    return root, hidden


MICRO_MODEL = [
    "--num-encoder-layers", "1,1",
    "--downsampling-factor", "1,2",
    "--encoder-dim", "64,64",
    "--feedforward-dim", "128,128",
    "--num-heads", "2,2",
    "--encoder-unmasked-dim", "32,32",
    "--cnn-module-kernel", "15,15",
    "--query-head-dim", "16",
    "--value-head-dim", "8",
    "--pos-head-dim", "4",
    "--pos-dim", "16",
    "--decoder-dim", "32",
    "--joiner-dim", "32",
    "--use-ctc", "1",
]  # fmt: skip


def train_cmd(root: Path, exp_dir: Path, *extra: str) -> List[str]:
    """train.py on the corpus at ``root`` with a micro model, 1 thread, no workers."""
    return [
        sys.executable,
        str(TRAIN_PY),
        "--exp-dir", str(exp_dir),
        "--manifest-dir", str(root / "data" / "fbank"),
        "--bpe-model", str(root / "data" / "lang_bpe_20" / "bpe.model"),
        *MICRO_MODEL,
        "--max-duration", "6",
        "--num-buckets", "2",
        "--num-workers", "0",
        "--enable-musan", "0",
        "--enable-spec-aug", "0",
        "--tensorboard", "0",
        "--num-epochs", "3",
        "--save-every-n", "3",
        "--average-period", "1",
        "--num-threads", "1",
        "--warm-step", "20",
        "--master-port", str(13000 + os.getpid() % 1000),
        *extra,
    ]  # fmt: skip


def env() -> dict:
    environment = dict(os.environ)
    environment["OMP_NUM_THREADS"] = "1"
    environment["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    return environment


def run(cmd: List[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=900)
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result
