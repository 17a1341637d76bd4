#!/usr/bin/env python3
"""Peak memory of the recipe's ``zipformer/pretrained.py`` on 1-, 10- and 30-minute files.

Usage (from the repository root; ~15 min on a loaded 2-core machine):

    OMP_NUM_THREADS=1 python tools/bench/pretrained_rss.py --work-dir /tmp/pretrained-rss \\
        --minutes 1 10 30

What it builds in ``--work-dir`` (kept, and reused when run again):

* ``lang_bpe_128/bpe.model`` and ``tokens.txt``: a BPE-128 model (the recipe's size) trained
  on random recombinations of the words of :data:`SENTENCES`;
* ``exp-causal/`` and ``exp-offline/``: ``epoch-1.pt`` of the model ``zipformer/train.py``'s
  defaults build (the causal tiny Zipformer with a CTC head, decoder/joiner 256, BPE 128), and
  the same with ``--causal 0``, with random weights: peak memory depends on the architecture
  and the input length, not on the weights. ``zipformer/export.py`` turns each into
  ``pretrained.pt``;
* ``speech.wav``: espeak-ng reading :data:`SENTENCES` (voices and speeds varied, 0.3 s of
  quiet between them, a little noise), resampled to 16 kHz; ``long-<M>.wav`` is it repeated to
  M minutes.

Then it runs ``./zipformer/pretrained.py --checkpoint <exp>/pretrained.pt --tokens ...
--num-threads 1 long-<M>.wav`` in ``egs/synth/ASR``, one fresh process per file and model, and
prints a markdown table of each one's peak RSS (the "Maximum resident set size" of
``/usr/bin/time -v``; see :func:`pretrained_rss`).
Files over 30 s go through the API's long-audio path: streamed chunk by chunk for the causal
model, overlapping 20 s windows (4 s overlap) for the ``--causal 0`` one.
"""

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO_ROOT / "egs" / "synth" / "ASR"
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from icefall_lite.api.asr_model import LONG_AUDIO_DEFAULTS  # noqa: E402

SAMPLE_RATE = 16000

# What espeak-ng reads (telephone-menu English, like the synth corpus).
SENTENCES = [
    "Thank you for calling. Please listen carefully, as our menu options have changed.",
    "For billing questions, press one. To report a problem with your service, press two.",
    "Your call is important to us. Please stay on the line and the next agent will answer.",
    "The conference will begin when the host joins. You are the third participant.",
    "You have four new messages and two saved messages. First new message, received today.",
    "Please enter your account number followed by the pound key.",
    "I am sorry, I did not understand that. Please say yes or no.",
    "The number you have dialed is not in service. Please check the number and dial again.",
    "Your estimated waiting time is seven minutes. You may also visit our web site.",
    "To hear these options again, press nine. To return to the main menu, press star.",
    "Meeting room twelve is booked from half past two until four o'clock on Thursday.",
    "Delta, echo, foxtrot, golf. Your confirmation code is eight five three two one.",
]
VOICES = ["en-us", "en", "en-us+f3", "en+m3", "en-us+f2", "en+m7"]


def espeak_speech(path: Path, work: Path) -> float:
    """Write ``path``: espeak-ng reading SENTENCES at 16 kHz (0.3 s of quiet between them and
    noise at -50 dB). Returns its length in seconds."""
    import logging

    from icefall_lite.audio import read_audio

    logging.getLogger().setLevel(logging.ERROR)  # read_audio's note on resampling each file
    rng = np.random.default_rng(18)
    pieces = []
    for i, sentence in enumerate(SENTENCES):
        raw = work / f".espeak-{i}.wav"
        voice, speed = VOICES[i % len(VOICES)], 150 + 15 * (i % 4)
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), sentence], check=True
        )
        pieces += [read_audio(raw, SAMPLE_RATE).numpy(), np.zeros(int(0.3 * SAMPLE_RATE))]
        raw.unlink()
    wave = np.concatenate(pieces).astype(np.float32)
    wave += 0.003 * rng.standard_normal(wave.size).astype(np.float32)
    sf.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
    return wave.size / SAMPLE_RATE


def repeat_to(source: Path, path: Path, seconds: float) -> Path:
    """``source`` repeated (and cut) to ``seconds``, written to ``path``."""
    one, rate = sf.read(source, dtype="int16")
    n = int(seconds * rate)
    sf.write(path, np.tile(one, -(-n // one.size))[:n], rate, subtype="PCM_16")
    return path


def bpe_128(work: Path) -> Path:
    """``<work>/lang_bpe_128`` with bpe.model and tokens.txt (made once)."""
    from icefall_lite.data.tokenizer import train_bpe_model

    lang = work / "lang_bpe_128"
    if not (lang / "tokens.txt").is_file():
        words = " ".join(SENTENCES).upper().replace(".", "").replace(",", "").split()
        rng = np.random.default_rng(0)
        lines = [" ".join(rng.choice(words, rng.integers(4, 14))) for _ in range(2000)]
        text = work / "bpe-text.txt"
        text.write_text("\n".join(lines) + "\n")
        train_bpe_model(text, lang, vocab_size=128)
    return lang


def _train_script():
    spec = importlib.util.spec_from_file_location(
        "pretrained_rss_train", RECIPE_DIR / "zipformer" / "train.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_model(exp_dir: Path, lang: Path, *flags: str) -> Path:
    """``<exp_dir>/epoch-1.pt``: the model train.py builds with its defaults (and ``flags``)
    for ``lang``'s BPE model, random weights (seeded). Made once; returns its path."""
    import torch

    from icefall_lite.checkpoint import save_checkpoint
    from icefall_lite.data.tokenizer import load_bpe_model
    from icefall_lite.models import build_model

    out = exp_dir / "epoch-1.pt"
    if out.is_file():
        return out
    train = _train_script()
    params = train.get_params()
    params.update(vars(train.get_parser().parse_args(list(flags))))
    sp = load_bpe_model(lang / "bpe.model")  # what training sets (training/run.py)
    params.blank_id = sp.piece_to_id("<blk>")
    params.sos_id = params.eos_id = sp.piece_to_id("<sos/eos>")
    params.vocab_size = sp.get_piece_size()
    params.exp_dir = exp_dir
    params.bpe_model = lang / "bpe.model"
    torch.manual_seed(18)
    exp_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(params)
    save_checkpoint(out, model, model_avg=model, params=dict(params))
    return out


def export_pretrained(exp_dir: Path, lang: Path) -> Path:
    """``<exp_dir>/pretrained.pt`` by ``zipformer/export.py`` from epoch-1.pt (made once)."""
    out = exp_dir / "pretrained.pt"
    if not out.is_file():
        command = [sys.executable, "./zipformer/export.py", "--exp-dir", str(exp_dir)]
        command += ["--epoch", "1", "--avg", "1", "--use-averaged-model", "0"]
        command += ["--tokens", str(lang / "tokens.txt"), "--bpe-model", str(lang / "bpe.model")]
        subprocess.run(command, cwd=RECIPE_DIR, check=True, capture_output=True)
    return out


def pretrained_rss(checkpoint: Path, tokens: Path, wav: Path) -> Tuple[float, float, int]:
    """Run ``./zipformer/pretrained.py`` on ``wav`` in a fresh process (in egs/synth/ASR, one
    thread): (its peak RSS in MiB, wall seconds, words in the transcript).

    The peak is the kernel's ``ru_maxrss`` of that process, read by ``os.wait4``: the figure
    ``/usr/bin/time -v`` prints as "Maximum resident set size" (which it reads the same way),
    without needing that program."""
    command = [sys.executable, "./zipformer/pretrained.py", "--checkpoint", str(checkpoint)]
    command += ["--tokens", str(tokens), "--num-threads", "1", str(wav)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=RECIPE_DIR, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"pretrained.py failed on {wav}:\n{stderr[-3000:]}")
    text = stdout.strip().split("\n", 1)[1] if "\n" in stdout.strip() else ""
    return usage.ru_maxrss / 1024, wall, len(text.split())  # Linux: ru_maxrss in KiB


MODELS = {"causal": (), "offline": ("--causal", "0")}  # kind -> train.py flags
PATHS = {"causal": "streaming", "offline": "chunked windows"}  # files over 30 s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None, help="Default: a temp dir.")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 30])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="pretrained-rss-"))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    lang = bpe_128(work)
    speech = work / "speech.wav"
    if not speech.is_file():
        espeak_speech(speech, work)
    checkpoints = {}
    for kind in args.models:
        default_model(work / f"exp-{kind}", lang, *MODELS[kind])
        checkpoints[kind] = export_pretrained(work / f"exp-{kind}", lang)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}; "
        f"speech.wav {sf.info(speech).duration:.1f} s of espeak-ng, repeated\n"
    )
    rows: List[str] = []
    print("| minutes | model | long-audio path | peak RSS MiB | wall s | words |")
    print("| --- | --- | --- | --- | --- | --- |")
    for minutes in args.minutes:
        wav = repeat_to(speech, work / f"long-{minutes:g}.wav", minutes * 60)
        for kind in args.models:
            rss, wall, words = pretrained_rss(checkpoints[kind], lang / "tokens.txt", wav)
            long = minutes * 60 > LONG_AUDIO_DEFAULTS["long_audio_seconds"]
            path = PATHS[kind] if long else "whole file"
            rows.append(f"| {minutes:g} | {kind} | {path} | {rss:.0f} | {wall:.0f} | "
                        f"{words} |")  # fmt: skip
            print(rows[-1], flush=True)
        wav.unlink()


if __name__ == "__main__":
    main()
