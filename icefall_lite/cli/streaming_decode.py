"""What every ``<recipe>/streaming_decode.py`` does once its flags are parsed: load the causal
model like decode.py does, decode each test set chunk by chunk, write the same result files.

Results go to ``<exp-dir>/streaming/<decoding-method>/`` (recogs-*, errs-*, wer-summary-*,
named as decode.py names them), so simulated (decode.py) and chunk-wise streaming results of
one model can be compared file by file.
"""

import argparse
import logging
from typing import Any, Callable, Dict, Iterator, Mapping, Sequence, Tuple

import torch
from lhotse import CutSet

from icefall_lite.cli.checkpoints import build_averaged_model
from icefall_lite.cli.decode import (
    check_decoding_arguments,
    feature_norm_for,
    get_decode_parser,
    parse_decode_params,
)
from icefall_lite.cli.evaluate import decoding_suffix, load_test_cuts, result_key, save_results
from icefall_lite.data import AsrDataModule, load_bpe_model
from icefall_lite.errors import UsageError
from icefall_lite.models import add_zipformer_model_arguments, build_model
from icefall_lite.models.zipformer.presets import parse_int_list
from icefall_lite.streaming.decode import StreamingStats, streaming_decode
from icefall_lite.streaming.search import STREAMING_DECODING_METHODS, StreamingSearch
from icefall_lite.streaming.stream import TAIL_PADDING_FRAMES
from icefall_lite.utils import AttributeDict, setup_logger

__all__ = [
    "add_buffered_arguments",
    "cut_features",
    "get_streaming_decode_parser",
    "run_buffered_decode",
    "run_streaming_decode",
]


def get_streaming_decode_parser(
    test_sets: Sequence[str],
    description: str,
    add_model_flags: Callable[[argparse.ArgumentParser], None] = add_zipformer_model_arguments,
) -> argparse.ArgumentParser:
    """decode.py's flags plus ``--num-decode-streams``."""
    parser = get_decode_parser(test_sets, description, add_model_flags)
    parser.add_argument(
        "--num-decode-streams",
        type=int,
        default=2000,
        help="Most utterances decoded in parallel; a finished one frees its slot for the next.",
    )
    return parser


def cut_features(cuts: CutSet) -> Iterator[Tuple[str, torch.Tensor]]:
    """(cut id, (T, 80) fbank) for each cut, loaded lazily."""
    for cut in cuts:
        yield cut.id, torch.from_numpy(cut.load_features()).float()


def _first(value: Any, flag: str) -> int:
    return parse_int_list(value, flag)[0]


def _check_method(params: AttributeDict) -> None:
    if params.num_decode_streams < 1:
        raise UsageError(f"--num-decode-streams must be >= 1, got {params.num_decode_streams}")
    if params.decoding_method not in STREAMING_DECODING_METHODS:
        raise UsageError(
            f"--decoding-method {params.decoding_method}: streaming supports "
            f"{', '.join(STREAMING_DECODING_METHODS)}"
        )
    if params.get("lm_type", "none") != "none":
        # The chunk-wise searches take no LM yet; say so rather than ignore the flag.
        raise UsageError(
            f"--lm-type {params.lm_type}: chunk-wise streaming decodes without an LM; use "
            f"decode.py (simulated streaming) for LM fusion"
        )


def run_streaming_decode(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    dataset_prefix: str,
    defaults: Mapping[str, Any],
) -> Dict[str, Tuple[float, StreamingStats]]:
    """Parse ``argv`` and decode every test set chunk by chunk.

    Args:
      parser: from :func:`get_streaming_decode_parser`.
      dataset_prefix: cut files are ``<manifest-dir>/<prefix>_cuts_<test-set>.jsonl.gz``.
      defaults: the recipe's ``get_params()``.
    Returns:
      test set -> (WER % or None, timing).
    """
    args, params, files = parse_decode_params(parser, argv, defaults, check=_check_method)
    # An LSTM transducer is causal by construction; a Zipformer only with --causal 1.
    if params.get("model_family", "zipformer") == "zipformer" and not params.get("causal"):
        raise UsageError(
            f"--epoch/--iter: the model in {params.exp_dir} was not trained with --causal 1; "
            "it cannot be decoded chunk by chunk"
        )
    # Decoding uses one chunk size and left context (the first entries of the flags).
    params.chunk_size = _first(params.chunk_size, "--chunk-size")
    params.left_context_frames = _first(
        params.get("left_context_frames", 0), "--left-context-frames"
    )
    params.res_dir = params.exp_dir / "streaming" / params.decoding_method
    params.suffix = decoding_suffix(params)
    setup_logger(f"{params.res_dir}/log-decode-{params.suffix}")
    logging.info("Streaming decoding started")
    logging.info(params)

    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    model = build_averaged_model(params, build_model, device, files)
    try:
        encoder = model.streaming_encoder(params.chunk_size, params.left_context_frames)
        check_decoding_arguments(params, model)
    except ValueError as error:
        raise UsageError(str(error)) from None
    feature_norm = feature_norm_for(params, model)
    search = StreamingSearch.from_settings(model, params)
    sp = load_bpe_model(params.bpe_model)
    data_module = AsrDataModule(args)

    summary: Dict[str, Tuple[float, StreamingStats]] = {}
    for name in [s for s in params.test_sets.split(",") if s]:
        cuts = load_test_cuts(data_module, dataset_prefix, name).to_eager()
        decoded, stats = streaming_decode(
            encoder,
            search,
            cut_features(cuts),
            num_decode_streams=params.num_decode_streams,
            device=device,
            log_interval=50,
            tail_padding_frames=getattr(encoder, "tail_padding_frames", TAIL_PADDING_FRAMES),
            feature_norm=feature_norm,
        )
        results = [
            (cut.id, cut.supervisions[0].text.split(), sp.decode(decoded[cut.id].tokens).split())
            for cut in cuts
        ]
        wer = save_results(params, name, results)
        summary[name] = (wer, stats)
    _log_summary(params, summary)
    return summary


def _log_summary(
    params: AttributeDict, summary: Mapping[str, Tuple[float, StreamingStats]]
) -> None:
    """A table of WER, chunks, audio seconds, RTF and milliseconds per chunk per test set."""
    lines = [f"{'test set':<16}{'WER %':>8}{'chunks':>8}{'audio s':>10}{'RTF':>9}{'ms/chunk':>10}"]
    for name, (wer, stats) in summary.items():
        wer_text = "-" if wer is None else f"{wer:.2f}"
        rtf = stats.total_seconds / max(stats.audio_seconds, 1e-9)
        per_chunk = 1000 * stats.total_seconds / max(len(stats.chunk_seconds), 1)
        lines.append(
            f"{name:<16}{wer_text:>8}{len(stats.chunk_seconds):>8}{stats.audio_seconds:>10.1f}"
            f"{rtf:>9.4f}{per_chunk:>10.1f}"
        )
    logging.info(
        f"streaming {params.decoding_method} ({result_key(params)}), chunk {params.chunk_size}, "
        f"left context {params.left_context_frames}:\n" + "\n".join(lines)
    )


# ---------------------------------------------------------------------------------------------
# Buffered (chunked) streaming of a non-causal CTC model (Jasper/QuartzNet)


def add_buffered_arguments(parser: argparse.ArgumentParser) -> None:
    """``--chunk-frames``, ``--left-context``, ``--right-context`` (fbank frames, 10 ms)."""
    group = parser.add_argument_group("buffered streaming")
    group.add_argument(
        "--chunk-frames",
        type=int,
        default=120,
        help="Fbank frames (10 ms) per chunk; a multiple of the model's stride (120: of 2, 3, "
        "4 and 6).",
    )
    group.add_argument(
        "--left-context",
        type=int,
        default=240,
        help="Frames of history each chunk's window includes; a multiple of the stride.",
    )
    group.add_argument(
        "--right-context",
        type=int,
        default=120,
        help="Frames of look-ahead each chunk waits for: latency = (chunk + right) * 10 ms.",
    )


def run_buffered_decode(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    dataset_prefix: str,
    defaults: Mapping[str, Any],
) -> Dict[str, Any]:
    """decode.py on buffered chunked encoder output (:class:`BufferedCtcModel`), results in
    ``<exp-dir>/streaming/<decoding-method>/`` with the chunk and contexts in the suffix."""
    from icefall_lite.cli.decode import run_decode
    from icefall_lite.streaming.buffered import BufferedCtcModel

    def wrap(model, params):
        try:
            wrapped = BufferedCtcModel(
                model, params.chunk_frames, params.left_context, params.right_context
            )
        except ValueError as error:
            raise UsageError(str(error)) from None
        latency = (params.chunk_frames + params.right_context) * 10
        logging.info(
            f"Buffered streaming: chunk {params.chunk_frames}, left {params.left_context}, "
            f"right {params.right_context} frames; algorithmic latency {latency} ms (model "
            f"context {getattr(model, 'context_frames', '?')} frames each side)"
        )
        return wrapped

    # The suffix names the buffer sizes (decoding_suffix reads buffered_*).
    defaults = dict(defaults)
    argv = list(argv)
    args, _ = parser.parse_known_args(argv)
    defaults.update(
        buffered_chunk=args.chunk_frames,
        buffered_left=args.left_context,
        buffered_right=args.right_context,
    )
    return run_decode(parser, argv, dataset_prefix, defaults, wrap, result_subdir="streaming")
