#!/usr/bin/env python3
"""Decode real-time factor of every search method, at several CPU thread counts.

Usage (from the repository root):

    # a random model (architecture preset, vocabulary 500) on random 80-dim fbank
    .venv/bin/python tools/bench/decode_rtf.py --model-size small --num-utts 8 --seconds 6

    # a trained model on a test set, with WER (paths as in decode.py, run from the recipe dir)
    cd egs/synth/ASR && ../../../.venv/bin/python ../../../tools/bench/decode_rtf.py \\
        --exp-dir zipformer/exp --epoch 30 --avg 9 --cuts data/fbank/synth_cuts_dev.jsonl.gz \\
        --bpe-model data/lang_bpe_500/bpe.model --threads 1,2

The features are loaded once; then, per thread count, the encoder runs once per batch and each
method searches the same encoder output. RTF = (encoder + search seconds) / audio seconds;
the search-only share is shown too. Prints a table (and JSON with --json).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from icefall_lite.cli.evaluate import FRAME_SHIFT  # noqa: E402
from icefall_lite.search.decoding import (  # noqa: E402
    CTC_METHODS,
    DECODING_METHODS,
    TRANSDUCER_METHODS,
    search,
)
from icefall_lite.utils import AttributeDict  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", default=",".join(DECODING_METHODS))
    parser.add_argument("--threads", default="1,2", help="Comma-separated thread counts.")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--beam", type=float, default=20.0)
    parser.add_argument("--max-contexts", type=int, default=8)
    parser.add_argument("--max-states", type=int, default=64)
    parser.add_argument("--max-sym-per-frame", type=int, default=1)
    parser.add_argument("--num-paths", type=int, default=200)
    parser.add_argument("--nbest-scale", type=float, default=0.5)
    random_group = parser.add_argument_group("random model (when --exp-dir is not given)")
    random_group.add_argument("--model-size", default="tiny")
    random_group.add_argument("--vocab-size", type=int, default=500)
    random_group.add_argument("--num-utts", type=int, default=8)
    random_group.add_argument("--seconds", type=float, default=5.0)
    random_group.add_argument("--batch-size", type=int, default=8)
    trained = parser.add_argument_group("trained model")
    trained.add_argument("--exp-dir", default=None)
    trained.add_argument("--epoch", type=int, default=30)
    trained.add_argument("--iter", type=int, default=0)
    trained.add_argument("--avg", type=int, default=9)
    trained.add_argument("--use-averaged-model", type=int, default=1)
    trained.add_argument("--cuts", default=None, help="Cut manifest with features (trained mode).")
    trained.add_argument("--bpe-model", default="data/lang_bpe_500/bpe.model")
    trained.add_argument("--max-duration", type=float, default=300.0)
    parser.add_argument("--json", action="store_true", help="Also print the rows as JSON.")
    return parser


def random_setup(args) -> tuple:
    from icefall_lite.models import add_model_arguments, build_model

    model_parser = argparse.ArgumentParser()
    add_model_arguments(model_parser)
    params = AttributeDict(vars(model_parser.parse_args([])))
    params.update(
        model_size=args.model_size,
        vocab_size=args.vocab_size,
        blank_id=0,
        feature_dim=80,
        use_ctc=True,
    )
    torch.manual_seed(0)
    model = build_model(params).eval()
    num_frames = int(args.seconds / FRAME_SHIFT)
    batches = []
    for start in range(0, args.num_utts, args.batch_size):
        n = min(args.batch_size, args.num_utts - start)
        batches.append(
            {
                "features": torch.randn(n, num_frames, 80),
                "lens": torch.full((n,), num_frames),
                "refs": None,
                "seconds": n * args.seconds,
            }
        )
    return model, params, batches, None


def trained_setup(args) -> tuple:
    from lhotse import CutSet
    from lhotse.dataset import DynamicBucketingSampler, K2SpeechRecognitionDataset

    from icefall_lite.cli.checkpoints import (
        build_averaged_model,
        model_flag_names,
        resolve_model_params,
    )
    from icefall_lite.data import load_bpe_model
    from icefall_lite.models import build_model

    params = AttributeDict(
        exp_dir=Path(args.exp_dir),
        epoch=args.epoch,
        iter=args.iter,
        avg=args.avg,
        use_averaged_model=bool(args.use_averaged_model),
        feature_dim=80,
        blank_id=0,
    )
    files = resolve_model_params(params, model_flag_names(), {})
    model = build_averaged_model(params, build_model, files=files)
    sp = load_bpe_model(args.bpe_model)
    cuts = CutSet.from_file(args.cuts)
    dataset = K2SpeechRecognitionDataset(return_cuts=True)
    sampler = DynamicBucketingSampler(
        cuts, max_duration=args.max_duration, shuffle=False, num_buckets=2
    )
    batches = []
    for cut_batch in sampler:
        batch = dataset[cut_batch]
        batches.append(
            {
                "features": batch["inputs"],
                "lens": batch["supervisions"]["num_frames"],
                "refs": [t.split() for t in batch["supervisions"]["text"]],
                "seconds": float(sum(c.duration for c in batch["supervisions"]["cut"])),
            }
        )
    return model, params, batches, lambda ids: sp.decode(ids).split()


def word_errors(refs: List[List[str]], hyps: List[List[str]]) -> tuple:
    import kaldialign

    errors = sum(kaldialign.edit_distance(r, h)["total"] for r, h in zip(refs, hyps))
    return errors, sum(len(r) for r in refs)


@torch.no_grad()
def main() -> None:
    args = get_parser().parse_args()
    model, params, batches, to_words = trained_setup(args) if args.exp_dir else random_setup(args)
    params.update(
        beam_size=args.beam_size,
        beam=args.beam,
        max_contexts=args.max_contexts,
        max_states=args.max_states,
        max_sym_per_frame=args.max_sym_per_frame,
        num_paths=args.num_paths,
        nbest_scale=args.nbest_scale,
    )
    methods = [m for m in args.methods.split(",") if m]
    has_ctc = getattr(model, "ctc_output", None) is not None
    has_transducer = getattr(model, "decoder", None) is not None
    methods = [
        m
        for m in methods
        if (m in CTC_METHODS and has_ctc) or (m in TRANSDUCER_METHODS and has_transducer)
    ]
    audio_seconds = sum(b["seconds"] for b in batches)
    rows: List[Dict[str, Any]] = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        encoded, encoder_seconds = [], 0.0
        for b in batches:
            start = time.perf_counter()
            encoded.append(model.forward_encoder(b["features"], b["lens"]))
            encoder_seconds += time.perf_counter() - start
        for method in methods:
            params.decoding_method = method
            search_seconds, errors, ref_words = 0.0, 0, 0
            for b, (encoder_out, encoder_out_lens) in zip(batches, encoded):
                start = time.perf_counter()
                results = search(params, model, encoder_out, encoder_out_lens)
                search_seconds += time.perf_counter() - start
                if b["refs"] is not None:
                    e, n = word_errors(b["refs"], [to_words(r.tokens) for r in results])
                    errors, ref_words = errors + e, ref_words + n
            rows.append(
                {
                    "method": method,
                    "threads": threads,
                    "audio_s": audio_seconds,
                    "encoder_s": encoder_seconds,
                    "search_s": search_seconds,
                    "rtf": (encoder_seconds + search_seconds) / audio_seconds,
                    "search_rtf": search_seconds / audio_seconds,
                    "wer": 100.0 * errors / ref_words if ref_words else None,
                }
            )
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{len(batches)} batches, {audio_seconds:.1f} s of audio"
    )
    header = f"{'method':<24}{'threads':>8}{'encoder s':>11}{'search s':>10}{'RTF':>8}"
    print(header + f"{'search RTF':>12}{'WER %':>8}")
    for r in rows:
        wer = "-" if r["wer"] is None else f"{r['wer']:.2f}"
        print(
            f"{r['method']:<24}{r['threads']:>8}{r['encoder_s']:>11.2f}{r['search_s']:>10.2f}"
            f"{r['rtf']:>8.4f}{r['search_rtf']:>12.4f}{wer:>8}"
        )
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
