#!/usr/bin/env python3
"""Deployment benchmark of one causal (streaming) model: real-time factor of PyTorch,
TorchScript, onnxruntime (fp32 and int8) and sherpa-onnx, per-chunk latency, and WER of
simulated vs chunk-wise streaming at several chunk sizes.

Usage (from the repository root):

    # a random tiny causal model on synthetic audio (checks the machinery, no WER)
    .venv/bin/python tools/bench/inference_rtf.py --model-size tiny --num-utts 8

    # a trained causal model on a test set (run from the recipe dir; the cuts must have
    # recordings for the audio-based backends and transcripts for the WER)
    cd egs/synth/ASR && ../../../.venv/bin/python ../../../tools/bench/inference_rtf.py \\
        --exp-dir zipformer/exp --epoch 30 --avg 9 \\
        --cuts data/fbank/synth_cuts_test-human.jsonl.gz \\
        --bpe-model data/lang_bpe_500/bpe.model --tokens data/lang_bpe_500/tokens.txt \\
        --chunk-sizes 16,32 --left-context-frames 128,256

For each chunk size (and its left context), the model is exported to a temporary directory
(TorchScript and ONNX, as export.py / export-onnx.py do) and every backend decodes the same
utterances one stream at a time with greedy search (the deployment case: one user, one stream).
RTF = decode seconds / audio seconds on ``--num-threads`` threads; PyTorch, TorchScript and
onnxruntime start from precomputed fbank, sherpa-onnx from the waveform (its time includes its
own fbank). "ms/chunk" is the mean wall time of one chunk (encoder + search) in our loop;
"p95" its 95th percentile. "same" counts utterances whose transcript equals PyTorch's.
With --cuts and --bpe-model, the WER of simulated streaming (whole utterances, chunk masks,
decode.py --causal 1) and of chunk-wise streaming (streaming_decode.py) is printed as well.
"""

import argparse
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from icefall_lite.audio import compute_fbank  # noqa: E402
from icefall_lite.models.zipformer.presets import parse_int_list  # noqa: E402
from icefall_lite.models.zipformer.streaming import ZipformerStreamingEncoder  # noqa: E402
from icefall_lite.search import greedy_search  # noqa: E402
from icefall_lite.streaming import (  # noqa: E402
    StreamingSearch,
    simulated_streaming_input,
    streaming_decode,
)
from icefall_lite.utils import AttributeDict  # noqa: E402

SAMPLE_RATE = 16000


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunk-sizes", default="16,32", help="Chunk sizes (50 Hz frames).")
    parser.add_argument(
        "--left-context-frames", default="128,256", help="Left context for each chunk size."
    )
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument(
        "--backends",
        default="pytorch,torchscript,onnx,onnx-int8,sherpa-onnx",
        help="Comma-separated subset of pytorch, torchscript, onnx, onnx-int8, sherpa-onnx.",
    )
    parser.add_argument("--json", type=str, default="", help="Also write the numbers here.")
    trained = parser.add_argument_group("trained model (as in decode.py)")
    trained.add_argument("--exp-dir", type=str, default="")
    trained.add_argument("--epoch", type=int, default=30)
    trained.add_argument("--iter", type=int, default=0)
    trained.add_argument("--avg", type=int, default=9)
    trained.add_argument("--use-averaged-model", type=int, default=1)
    trained.add_argument("--cuts", type=str, default="", help="Cut manifest with recordings.")
    trained.add_argument("--max-utts", type=int, default=0, help="Use the first N cuts (0: all).")
    trained.add_argument("--bpe-model", type=str, default="", help="For the WER (optional).")
    trained.add_argument("--tokens", type=str, default="", help="tokens.txt for sherpa-onnx.")
    random_group = parser.add_argument_group("random model (when --exp-dir is not given)")
    random_group.add_argument("--model-size", default="tiny")
    random_group.add_argument("--vocab-size", type=int, default=500)
    random_group.add_argument("--num-utts", type=int, default=8)
    random_group.add_argument("--seconds", type=float, default=5.0)
    return parser


def load_model(args) -> Tuple[torch.nn.Module, AttributeDict]:
    from icefall_lite.models import add_model_arguments, build_model

    if args.exp_dir:
        from icefall_lite.cli.checkpoints import load_model_for_inference, model_flag_names

        params = AttributeDict(
            exp_dir=Path(args.exp_dir),
            epoch=args.epoch,
            iter=args.iter,
            avg=args.avg,
            use_averaged_model=bool(args.use_averaged_model),
        )
        model = load_model_for_inference(params, build_model, model_flag_names())
    else:
        parser = argparse.ArgumentParser()
        add_model_arguments(parser)
        argv = ["--model-size", args.model_size, "--causal", "1"]
        params = AttributeDict(vars(parser.parse_args(argv)))
        params.update(vocab_size=args.vocab_size, blank_id=0, feature_dim=80)
        torch.manual_seed(0)
        model = build_model(params).eval()
    if not params.get("causal"):
        raise ValueError("inference_rtf.py benchmarks streaming: the model must be causal")
    return model, params


def load_audio(args) -> List[Tuple[str, torch.Tensor, Optional[str]]]:
    """(id, waveform at 16 kHz, transcript or None) per utterance."""
    if args.cuts:
        from lhotse import CutSet

        cuts = CutSet.from_file(args.cuts)
        items = []
        for i, cut in enumerate(cuts):
            if args.max_utts and i >= args.max_utts:
                break
            if cut.sampling_rate != SAMPLE_RATE:
                cut = cut.resample(SAMPLE_RATE)
            wave = torch.from_numpy(cut.load_audio()[0]).float()
            text = " ".join(s.text for s in cut.supervisions) if cut.supervisions else None
            items.append((cut.id, wave, text))
        return items
    rng = np.random.default_rng(0)
    items = []
    for i in range(args.num_utts):
        t = np.arange(int(args.seconds * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = 150 + 100 * np.sin(2 * np.pi * (0.5 + 0.1 * i) * t)
        x = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / SAMPLE_RATE)
        x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size)
        items.append((f"synthetic-{i}", torch.from_numpy(x.astype(np.float32)), None))
    return items


def write_tokens(filename: Path, vocab_size: int) -> None:
    symbols = ["<blk>", "<sos/eos>", "<unk>"] + [f"▁t{i}" for i in range(3, vocab_size)]
    filename.write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols)), encoding="utf-8")


def wer(results: Sequence[Tuple[str, List[str], List[str]]]) -> float:
    from icefall_lite.scoring import write_error_stats

    return write_error_stats(io.StringIO(), "bench", results, enable_log=False)


def time_stream_decode(encoder, search_model, features) -> Tuple[Dict[str, List[int]], Dict]:
    search = StreamingSearch(search_model, "greedy_search")
    # warm-up (TorchScript optimises on its first calls; allocators grow): not timed
    streaming_decode(encoder, search, features[:1], num_decode_streams=1)
    tokens, chunk_seconds, total = {}, [], 0.0
    for key, feats in features:
        start = time.perf_counter()
        results, stats = streaming_decode(encoder, search, [(key, feats)], num_decode_streams=1)
        total += time.perf_counter() - start
        chunk_seconds += stats.chunk_seconds
        tokens[key] = results[key].tokens
    return tokens, {
        "seconds": total,
        "ms_per_chunk": 1000 * float(np.mean(chunk_seconds)),
        "p95_ms_per_chunk": 1000 * float(np.percentile(chunk_seconds, 95)),
    }


def bench_sherpa(encoder, decoder, joiner, tokens_txt, audio, num_threads, symbol_to_id):
    import sherpa_onnx

    recognizer = sherpa_onnx.OnlineRecognizer.from_transducer(
        str(tokens_txt), str(encoder), str(decoder), str(joiner), num_threads=num_threads
    )
    # sherpa-onnx decodes whole chunks only; 0.66 s of trailing silence flushes the end.
    tail = np.zeros(int(0.66 * SAMPLE_RATE), dtype=np.float32)

    def decode(wave: torch.Tensor) -> List[str]:
        stream = recognizer.create_stream()
        stream.accept_waveform(SAMPLE_RATE, np.concatenate([wave.numpy(), tail]))
        stream.input_finished()
        while recognizer.is_ready(stream):
            recognizer.decode_stream(stream)
        return recognizer.get_result_all(stream).tokens

    decode(audio[0][1])  # warm-up, not timed
    out, total = {}, 0.0
    for key, wave, _ in audio:
        start = time.perf_counter()
        tokens = decode(wave)
        total += time.perf_counter() - start
        out[key] = [symbol_to_id.get(t.replace(" ", "▁"), -1) for t in tokens]
    return out, {"seconds": total}


def main() -> None:
    args = get_parser().parse_args()
    torch.set_num_threads(args.num_threads)
    backends = [b for b in args.backends.split(",") if b]
    model, params = load_model(args)
    audio = load_audio(args)
    audio_seconds = sum(w.numel() for _, w, _ in audio) / SAMPLE_RATE
    features = [(key, f) for (key, _, _), f in zip(audio, compute_fbank([w for _, w, _ in audio]))]
    sp = None
    if args.bpe_model:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=args.bpe_model)
    chunk_sizes = parse_int_list(args.chunk_sizes, "--chunk-sizes")
    left_contexts = parse_int_list(args.left_context_frames, "--left-context-frames")
    if len(left_contexts) != len(chunk_sizes):
        raise ValueError("--left-context-frames needs one value per --chunk-sizes entry")

    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokens_txt = Path(args.tokens) if args.tokens else tmp / "tokens.txt"
        if not args.tokens:
            write_tokens(tokens_txt, params.vocab_size)
        symbol_to_id = {
            line.split()[0]: int(line.split()[1])
            for line in tokens_txt.read_text(encoding="utf-8").splitlines()
            if line.strip()
        }
        for chunk, left in zip(chunk_sizes, left_contexts):
            rows += bench_chunk(args, model, params, chunk, left, backends, audio, features,
                                audio_seconds, tmp, tokens_txt, symbol_to_id, sp)  # fmt: skip
    print_table(args, rows, audio_seconds, len(audio))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def bench_chunk(args, model, params, chunk, left, backends, audio, features, audio_seconds,
                tmp, tokens_txt, symbol_to_id, sp) -> List[Dict[str, Any]]:  # fmt: skip
    from icefall_lite.export.metadata import (
        decoder_meta_data,
        joiner_meta_data,
        streaming_encoder_meta_data,
    )
    from icefall_lite.export.onnx import (
        export_decoder_onnx,
        export_joiner_onnx,
        export_streaming_encoder_onnx,
        quantize_int8,
    )
    from icefall_lite.export.onnx_model import OnnxStreamingEncoder, OnnxTransducer
    from icefall_lite.export.torchscript import export_jit_script

    rows = []
    encoder = ZipformerStreamingEncoder(model.encoder_embed, model.encoder, chunk, left)
    tag = f"chunk-{chunk}-left-{left}"
    results: Dict[str, Dict[str, List[int]]] = {}

    def add(backend: str, tokens: Dict[str, List[int]], timing: Dict[str, float]) -> None:
        results[backend] = tokens
        row = {"chunk_ms": chunk * 20, "left": left, "backend": backend}
        row["rtf"] = timing["seconds"] / audio_seconds
        row.update({k: v for k, v in timing.items() if k != "seconds"})
        reference = results.get("pytorch")
        if reference is not None:
            row["same"] = sum(tokens[k] == reference[k] for k in reference)
        rows.append(row)
        print(f"  {tag} {backend}: RTF {row['rtf']:.4f}", file=sys.stderr)

    if "pytorch" in backends:
        add("pytorch", *time_stream_decode(encoder, model, features))
    if "torchscript" in backends:
        jit_file = tmp / f"jit-{tag}.pt"
        export_jit_script(model, jit_file, True, chunk, left)
        scripted = torch.jit.load(str(jit_file))
        add("torchscript", *time_stream_decode(scripted, scripted, features))
    onnx_backends = [b for b in backends if b.startswith("onnx") or b == "sherpa-onnx"]
    if onnx_backends:
        files = {k: tmp / f"{k}-{tag}.onnx" for k in ("encoder", "decoder", "joiner")}
        meta = streaming_encoder_meta_data(params, chunk, left)
        export_streaming_encoder_onnx(encoder, model.joiner.encoder_proj, files["encoder"], meta)
        export_decoder_onnx(
            model.decoder,
            model.joiner.decoder_proj,
            files["decoder"],
            decoder_meta_data(model.decoder.context_size, params.vocab_size),
        )
        export_joiner_onnx(model.joiner, files["joiner"],
                           joiner_meta_data(model.joiner.output_linear.in_features))  # fmt: skip
        int8 = {k: f.with_suffix(".int8.onnx") for k, f in files.items()}
        for k, op_types in (("encoder", ("MatMul",)), ("decoder", ("MatMul", "Gather")),
                            ("joiner", ("MatMul",))):  # fmt: skip
            quantize_int8(files[k], int8[k], op_types)
        for backend, chosen in (("onnx", files), ("onnx-int8", int8)):
            if backend in backends:
                onnx_model = OnnxTransducer(chosen["decoder"], chosen["joiner"],
                                            num_threads=args.num_threads)  # fmt: skip
                onnx_encoder = OnnxStreamingEncoder(chosen["encoder"], args.num_threads)
                add(backend, *time_stream_decode(onnx_encoder, onnx_model, features))
        if "sherpa-onnx" in backends:
            add(
                "sherpa-onnx",
                *bench_sherpa(
                    files["encoder"],
                    files["decoder"],
                    files["joiner"],
                    tokens_txt,
                    audio,
                    args.num_threads,
                    symbol_to_id,
                ),
            )

    if sp is not None and all(text is not None for _, _, text in audio):
        # simulated streaming (whole utterances with chunk masks) vs chunk-wise, same model
        model.encoder.chunk_size = [chunk]
        model.encoder.left_context_frames = [left]
        simulated = {}
        with torch.no_grad():
            for key, feats in features:
                x, x_lens = simulated_streaming_input(
                    model.encoder_embed, feats.unsqueeze(0), torch.tensor([feats.size(0)]),
                    2 * chunk,
                )  # fmt: skip
                out, out_lens = model.forward_encoder(x, x_lens)
                simulated[key] = greedy_search(model, out, out_lens)[0].tokens
        refs = {key: text.split() for key, _, text in audio}

        def score(tokens: Dict[str, List[int]]) -> float:
            return wer([(k, refs[k], sp.decode(tokens[k]).split()) for k in refs])

        for row in rows:
            row["wer"] = score(results[row["backend"]])
        row = {
            "chunk_ms": chunk * 20,
            "left": left,
            "backend": "simulated",
            "wer": score(simulated),
        }
        if "pytorch" in results:
            row["same"] = sum(simulated[k] == results["pytorch"][k] for k in simulated)
        rows.append(row)
    return rows


def print_table(args, rows, audio_seconds, num_utts) -> None:
    print(
        f"\n{num_utts} utterances, {audio_seconds:.1f} s of audio, greedy search, one stream, "
        f"{args.num_threads} thread(s), {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}\n"
    )
    header = "| chunk | left | backend | RTF | ms/chunk | p95 ms | same as PyTorch | WER % |"
    print(header)
    print("|" + "---|" * 8)
    for r in rows:
        rtf = f"{r['rtf']:.4f}" if "rtf" in r else "-"
        ms = f"{r['ms_per_chunk']:.1f}" if "ms_per_chunk" in r else "-"
        p95 = f"{r['p95_ms_per_chunk']:.1f}" if "p95_ms_per_chunk" in r else "-"
        same = f"{r['same']}/{num_utts}" if "same" in r else "-"
        w = f"{r['wer']:.2f}" if "wer" in r else "-"
        print(f"| {r['chunk_ms']} ms | {r['left']} | {r['backend']} | {rtf} | {ms} | {p95} | "
              f"{same} | {w} |")  # fmt: skip


if __name__ == "__main__":
    main()
