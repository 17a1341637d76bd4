#!/usr/bin/env python3
"""Noise and music recordings for on-the-fly mixing (the synth recipe's MUSAN).

Usage:
  ./local/prepare_noise.py --audio-dir download/noise --manifest-dir data/manifests --seed 42

Music: Asterisk's music on hold (``asterisk-moh-opsound-g722``, about 18 minutes). Noise:
generated white, pink and brown noise (one minute each, seeded). Writes
``<manifest-dir>/synth_recordings_noise.jsonl.gz``; the fbank stage cuts it into 10 s windows.
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from lhotse import Recording, RecordingSet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asterisk import MOH_DIR, SAMPLE_RATE, decode_g722, require, write_wav  # noqa: E402


def coloured_noise(rng: np.random.Generator, seconds: float, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), int16 at -20 dBFS."""
    num = int(seconds * SAMPLE_RATE)
    spectrum = rng.standard_normal(num // 2 + 1) + 1j * rng.standard_normal(num // 2 + 1)
    freqs = np.fft.rfftfreq(num, 1.0 / SAMPLE_RATE)
    freqs[0] = freqs[1]  # no infinite gain at DC
    signal = np.fft.irfft(spectrum / freqs ** (exponent / 2.0), n=num)
    signal *= 0.1 / (np.sqrt(np.mean(signal**2)) + 1e-12)
    return (np.clip(signal, -1.0, 1.0) * 32767).astype(np.int16)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audio-dir", type=Path, default=Path("download/noise"))
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(
        format="%(asctime)s %(levelname)s [prepare_noise] %(message)s", level="INFO"
    )
    require(MOH_DIR)
    args.audio_dir.mkdir(parents=True, exist_ok=True)
    wavs = []
    for g722 in sorted(MOH_DIR.glob("*.g722")):
        wav = args.audio_dir / f"music-{g722.stem}.wav"
        if not wav.is_file():
            write_wav(decode_g722(g722), wav)
        wavs.append(wav)
    rng = np.random.default_rng(args.seed)
    for name, exponent in (("white", 0.0), ("pink", 1.0), ("brown", 2.0)):
        wav = args.audio_dir / f"noise-{name}.wav"
        samples = coloured_noise(rng, 60.0, exponent)
        if not wav.is_file():
            write_wav(samples, wav)
        wavs.append(wav)
    recordings = RecordingSet.from_recordings(Recording.from_file(w) for w in wavs)
    args.manifest_dir.mkdir(parents=True, exist_ok=True)
    final = args.manifest_dir / "synth_recordings_noise.jsonl.gz"
    tmp = final.with_name(".tmp." + final.name)
    recordings.to_file(tmp)
    tmp.replace(final)
    minutes = sum(r.duration for r in recordings) / 60
    logging.info(f"noise: {len(recordings)} recordings, {minutes:.1f} minutes")


if __name__ == "__main__":
    main()
