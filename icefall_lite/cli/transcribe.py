"""``python -m icefall_lite.transcribe`` (console script ``icefall-lite-transcribe``): transcribe
files, a Kaldi ``wav.scp`` or a NeMo JSON manifest with a model package.

    python -m icefall_lite.transcribe --model exp/model-epoch-6-avg-2.icefall a.wav b.flac
    python -m icefall_lite.transcribe --model NAME --json --wav-scp data/wav.scp
    python -m icefall_lite.transcribe --model PKG --manifest test.json --output-manifest out.json
    python -m icefall_lite.transcribe --model PKG --decoding-method ctc_prefix_beam_search \\
        --lm-path data/lm/lang_bpe_500_5gram.arpa --lm-scale 0.3 a.wav

Prints ``<input><TAB><text>`` per input (the wav.scp id, else the path), or with ``--json`` one
JSON object per line with the text, tokens, token start times, words with start/end times and
score. A NeMo manifest's results are written as NeMo's output manifest (its lines with
``pred_text``). An unreadable input is reported by name and the others are still transcribed
(exit status 1 then).
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from icefall_lite.cli.errors import run_main
from icefall_lite.errors import UsageError
from icefall_lite.search.decoding import DECODING_METHODS

__all__ = ["get_parser", "main", "run_transcribe"]

PROG = "icefall-lite-transcribe"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Transcribe audio with an icefall-lite model package.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model",
        required=True,
        help="A model package (*.icefall, written by export.py or ASRModel.save_to), a folder "
        "holding one, or a name looked up in $ICEFALL_LITE_MODELS and "
        "~/.cache/icefall_lite/models.",
    )
    parser.add_argument("audio", nargs="*", help="Audio files (any format, rate, channels).")
    parser.add_argument("--wav-scp", type=Path, help="A Kaldi wav.scp: '<id> <file>' per line.")
    parser.add_argument(
        "--manifest",
        type=Path,
        help="A NeMo JSON manifest (audio_filepath, duration, optional offset and text).",
    )
    parser.add_argument(
        "--output-manifest",
        type=Path,
        help="Where the NeMo output manifest with pred_text goes (default: <manifest stem>"
        "_pred.json beside --manifest).",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines with timestamps.")
    parser.add_argument(
        "--decoding-method",
        choices=DECODING_METHODS,
        help="Search (default: the package's; greedy_search, or ctc_greedy_search for a "
        "CTC-only model).",
    )
    parser.add_argument("--beam-size", type=int, default=4, help="Beam searches: hypotheses kept.")
    parser.add_argument(
        "--lm-path",
        type=Path,
        help="Shallow fusion of this token-level n-gram LM (ARPA, plain or .gz, over the "
        "package's BPE tokens, as prepare.sh's LM stage builds it) into "
        "ctc_prefix_beam_search or modified_beam_search, as decode.py's --lm-type ngram "
        "(default: no LM).",
    )
    parser.add_argument(
        "--lm-scale",
        type=float,
        default=0.3,
        help="--lm-path: weight of the LM's log-probabilities in the search score.",
    )
    parser.add_argument(
        "--word-insertion-bonus",
        type=float,
        default=0.0,
        help="--lm-path: added to the score for every word begun.",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="Inputs decoded together.")
    parser.add_argument(
        "--long-audio",
        choices=("auto", "streaming", "chunked"),
        default="auto",
        help="Inputs over --long-audio-seconds: streamed (a causal model) or decoded in "
        "overlapping windows of --chunk-seconds.",
    )
    parser.add_argument("--long-audio-seconds", type=float, default=30.0)
    parser.add_argument("--chunk-seconds", type=float, default=20.0)
    parser.add_argument("--overlap-seconds", type=float, default=4.0)
    parser.add_argument(
        "--full-context",
        action="store_true",
        help="A causal model: decode files (and long-audio windows) with full context instead "
        "of its streaming chunks (decode.py --chunk-size -1); streamed long audio is unchanged.",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu, or cuda / cuda:N where a GPU is available."
    )
    parser.add_argument("--num-threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument(
        "--progress",
        choices=("auto", "yes", "no"),
        default="auto",
        help="A progress bar on stderr (auto: for more than 10 inputs on a terminal).",
    )
    return parser


def _inputs(args: argparse.Namespace) -> List:
    inputs: List = list(args.audio)
    for flag, path in (("--wav-scp", args.wav_scp),):
        if path is not None:
            if not path.is_file():
                raise UsageError(f"{flag} {path}: no such file")
            inputs.append(path)
    return inputs


def run_transcribe(argv: Sequence[str]) -> int:
    """Parse ``argv`` and transcribe; returns the exit status (1 if an input was unreadable)."""
    args = get_parser().parse_args(list(argv))
    if not (args.audio or args.wav_scp or args.manifest):
        raise UsageError("nothing to transcribe: give audio files, --wav-scp or --manifest")
    if args.num_threads < 1:
        raise UsageError(f"--num-threads must be >= 1, got {args.num_threads}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: no CUDA device here; use --device cpu")
    logging.basicConfig(format="%(levelname)s %(message)s", level=logging.WARNING)
    torch.set_num_threads(args.num_threads)

    from icefall_lite.api import ASRModel

    model = ASRModel.from_pretrained(args.model, map_location=args.device)
    if args.lm_path is not None:  # read once here, so a bad file is named by its flag
        model.lm_fusion(args.lm_path, args.lm_scale, args.word_insertion_bonus, what="--lm-path")
    options = dict(
        batch_size=args.batch_size,
        decoding_method=args.decoding_method,
        beam_size=args.beam_size,
        lm_path=args.lm_path,
        lm_scale=args.lm_scale,
        word_insertion_bonus=args.word_insertion_bonus,
        long_audio=args.long_audio,
        long_audio_seconds=args.long_audio_seconds,
        chunk_seconds=args.chunk_seconds,
        overlap_seconds=args.overlap_seconds,
        full_context=args.full_context,
    )
    failures = 0
    if args.manifest is not None:
        if not args.manifest.is_file():
            raise UsageError(f"--manifest {args.manifest}: no such file")
        out = model.transcribe_manifest(args.manifest, args.output_manifest, **options)
        for line in out.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            _print(entry["audio_filepath"], entry["pred_text"], None, args.json)
        print(f"{PROG}: wrote {out}", file=sys.stderr)
    inputs = _inputs(args)
    if inputs:
        from icefall_lite.api.asr_model import _expand

        names = [item.name for item in _expand(inputs, 16000)]
        results = model.transcribe_generator(
            inputs, return_hypotheses=True, errors="skip", **options
        )
        show = args.progress == "yes" or (
            args.progress == "auto" and len(names) > 10 and sys.stderr.isatty()
        )
        if show:
            from tqdm import tqdm

            results = tqdm(results, total=len(names), unit="file", file=sys.stderr)
        for name, hyp in zip(names, results):
            if hyp is None:
                failures += 1
                _print(name, None, None, args.json)
            else:
                _print(name, hyp.text, hyp, args.json)
    return 1 if failures else 0


def _print(name: str, text: Optional[str], hyp, as_json: bool) -> None:
    if as_json:
        record = {"audio": name}
        record.update(hyp.to_dict() if hyp is not None else {"text": text})
        if text is None:
            record["error"] = "unreadable, see the message above"
        print(json.dumps(record, ensure_ascii=False), flush=True)
    else:
        print(f"{name}\t{text if text is not None else '<unreadable, see above>'}", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of ``python -m icefall_lite.transcribe`` and the console script."""
    run_main(PROG, run_transcribe, argv)
