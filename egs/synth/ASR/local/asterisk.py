"""Reading Asterisk's Debian sound packages: G.722 prompts and their transcripts.

``asterisk-core-sounds-en-g722`` holds one speaker's (Allison Smith's) telephone prompts as 16 kHz
G.722; ``asterisk-core-sounds-en`` holds their transcripts in ``core-sounds-en.txt.gz`` as
``key: text`` lines (``key`` is the file path without extension). ``asterisk-moh-opsound-g722``
holds music on hold. PyPI ``av`` (FFmpeg) decodes G.722.
"""

import gzip
import os
from pathlib import Path
from typing import Dict

import numpy as np
import soundfile as sf

PROMPT_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
MOH_DIR = Path("/usr/share/asterisk/moh")
SAMPLE_RATE = 16000

INSTALL = {
    PROMPT_DIR: "apt-get install -y asterisk-core-sounds-en-g722",
    TRANSCRIPTS: "apt-get install -y asterisk-core-sounds-en",
    MOH_DIR: "apt-get install -y asterisk-moh-opsound-g722",
}


def require(path: Path) -> None:
    """Exit with a one-line message naming the Debian package that provides ``path``."""
    if not path.exists():
        raise SystemExit(f"{path} not found: {INSTALL.get(path, 'install the Asterisk sounds')}")


def decode_g722(path: Path) -> np.ndarray:
    """Decode a raw G.722 file to int16 samples at 16 kHz, shape (num_samples,)."""
    import av

    with av.open(str(path), format="g722") as container:
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
    if not frames:
        raise ValueError(f"{path}: no audio decoded")
    return np.concatenate(frames).astype(np.int16)


def write_wav(samples: np.ndarray, path: Path) -> None:
    """Write 16 kHz mono 16-bit WAV atomically."""
    tmp = path.with_name(".tmp." + path.name)
    sf.write(str(tmp), samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def read_transcripts(path: Path = TRANSCRIPTS) -> Dict[str, str]:
    """``{key: written text}`` from ``core-sounds-en.txt.gz`` (comments and blanks skipped)."""
    require(path)
    transcripts = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            key, text = line.split(":", 1)
            transcripts[key.strip()] = text.strip()
    return transcripts
