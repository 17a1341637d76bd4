"""What the recipes' pretrained.py, jit_pretrained.py and onnx_pretrained.py do once their flags
are parsed: load the model file, transcribe the sound files, print icefall's ``<file>:\n<text>``.
"""

import argparse
import logging
from pathlib import Path
from typing import Dict, Sequence

import torch

from icefall_lite.cli.decode import (
    add_decoding_arguments,
    check_decoding_arguments,
    check_search_flags,
)
from icefall_lite.errors import UsageError
from icefall_lite.export.transcribe import (
    print_transcripts,
    read_tokens,
    transcribe_offline,
    transcribe_streaming,
)
from icefall_lite.search.decoding import CTC_METHODS, TRANSDUCER_METHODS
from icefall_lite.streaming.search import STREAMING_DECODING_METHODS

__all__ = [
    "add_transcribe_arguments",
    "jit_pretrained_parser",
    "onnx_pretrained_parser",
    "pretrained_parser",
    "run_jit_pretrained",
    "run_onnx_pretrained",
    "run_pretrained",
]


def add_transcribe_arguments(parser: argparse.ArgumentParser) -> None:
    """``sound_files``, ``--tokens``, ``--sample-rate``, ``--num-threads`` and decode.py's
    search flags."""
    parser.add_argument(
        "sound_files",
        type=str,
        nargs="+",
        help="Audio files to transcribe (wav, flac, ...; any sample rate; the first channel "
        "of multi-channel files is used).",
    )
    parser.add_argument(
        "--tokens",
        type=str,
        default="data/lang_bpe_500/tokens.txt",
        help="tokens.txt mapping token ids to symbols.",
    )
    parser.add_argument(
        "--sample-rate", type=int, default=16000, help="Sample rate the model was trained at."
    )
    parser.add_argument("--num-threads", type=int, default=1, help="CPU threads.")
    add_decoding_arguments(parser)


# The rate of the fbank features every model here is trained on; files at other rates are
# resampled to it.
MODEL_SAMPLE_RATE = 16000


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Dict:
    params = dict(vars(parser.parse_args(list(argv))))
    check_search_flags(params)
    if params["sample_rate"] != MODEL_SAMPLE_RATE:
        raise UsageError(
            f"--sample-rate {params['sample_rate']}: the models are trained on "
            f"{MODEL_SAMPLE_RATE} Hz features; files at any other rate are resampled to it, so "
            f"leave --sample-rate at {MODEL_SAMPLE_RATE}"
        )
    if params["num_threads"] < 1:
        raise UsageError(f"--num-threads must be >= 1, got {params['num_threads']}")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    torch.set_num_threads(params["num_threads"])
    return params


def _check_exported_method(params: Dict, streaming: bool, flag: str, filename: str) -> None:
    """Exported models hold the transducer only (no CTC head); a streaming one is searched
    chunk by chunk with the streaming searches."""
    method = params["decoding_method"]
    allowed = STREAMING_DECODING_METHODS if streaming else TRANSDUCER_METHODS
    if method not in allowed:
        kind = "a streaming export" if streaming else "an exported model"
        hint = " (CTC methods need pretrained.py)" if method in CTC_METHODS else ""
        raise UsageError(
            f"--decoding-method {method}: {flag} {filename} is {kind}, which supports "
            f"{', '.join(allowed)}{hint}"
        )


def pretrained_parser(description: str) -> argparse.ArgumentParser:
    """pretrained.py's flags: ``--checkpoint`` (export.py's pretrained.pt) and the common ones."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        type=str,
        required=True,
        help="pretrained.pt written by export.py (weights and the params to build the model).",
    )
    add_transcribe_arguments(parser)
    return parser


def run_pretrained(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """pretrained.py: the PyTorch model in pretrained.pt, through the Python API
    (:class:`icefall_lite.ASRModel`): files are decoded in batches, a causal model the way
    chunk-wise streaming would (simulated streaming), and a file longer than 30 s chunk by chunk
    (streamed, or in overlapping windows), so memory does not grow with its length. Returns the
    count of unreadable files."""
    from icefall_lite.api import ASRModel

    params = _parse(parser, argv)
    model = ASRModel.from_checkpoint(params["checkpoint"], params["tokens"])
    check_decoding_arguments(params, model.model)
    search_flags = (
        "beam_size",
        "beam",
        "max_contexts",
        "max_states",
        "max_sym_per_frame",
        "num_paths",
        "nbest_scale",
    )
    texts = model.transcribe(
        params["sound_files"],
        decoding_method=params["decoding_method"],
        errors="skip",
        **{key: params[key] for key in search_flags},
    )
    return print_transcripts(params["sound_files"], texts)


def jit_pretrained_parser(description: str) -> argparse.ArgumentParser:
    """jit_pretrained.py's flags: ``--nn-model-filename`` and the common ones."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--nn-model-filename",
        type=str,
        required=True,
        help="jit_script.pt or jit_script_chunk_<C>_left_<L>.pt written by export.py --jit 1.",
    )
    add_transcribe_arguments(parser)
    return parser


def run_jit_pretrained(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """jit_pretrained.py: a TorchScript model (offline, or streaming chunk by chunk)."""
    params = _parse(parser, argv)
    filename = params["nn_model_filename"]
    if not Path(filename).is_file():
        raise FileNotFoundError(f"--nn-model-filename {filename}: no such file")
    try:
        model = torch.jit.load(filename, map_location="cpu")
    except Exception as error:  # torch raises RuntimeError, ValueError, ... for a bad archive
        message = " ".join(str(error).split())[:200]
        raise UsageError(
            f"--nn-model-filename {filename}: not a TorchScript model (truncated, or not written "
            f"by export.py --jit 1): {type(error).__name__}: {message}"
        ) from None
    model.eval()
    for part in ("decoder", "joiner"):
        if not hasattr(model, part):
            raise UsageError(
                f"--nn-model-filename {filename}: a TorchScript module without a {part}; "
                "expected jit_script*.pt written by export.py --jit 1"
            )
    streaming = hasattr(model, "get_init_states")
    _check_exported_method(params, streaming, "--nn-model-filename", filename)
    symbols = read_tokens(params["tokens"])
    if streaming:
        texts = transcribe_streaming(params, params["sound_files"], model, model, symbols)
    else:
        texts = transcribe_offline(params, params["sound_files"], model, model, symbols)
    return print_transcripts(params["sound_files"], texts)


def onnx_pretrained_parser(description: str) -> argparse.ArgumentParser:
    """onnx_pretrained.py's flags: the three model files and the common ones."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for part in ("encoder", "decoder", "joiner"):
        parser.add_argument(
            f"--{part}-model-filename",
            type=str,
            required=True,
            help=f"{part}-*.onnx (or .int8.onnx) written by export-onnx.py.",
        )
    add_transcribe_arguments(parser)
    return parser


# A metadata key only the export of each part writes (export/metadata.py).
_ONNX_PART_KEYS = {"encoder": "model_type", "decoder": "context_size", "joiner": "joiner_dim"}


def _onnx_part_meta(filename: str, part: str) -> Dict[str, str]:
    """The metadata of ``--<part>-model-filename``, checked to be that part's (a swapped or
    foreign file is a UsageError naming the flag)."""
    from icefall_lite.export.onnx import read_meta_data

    flag = f"--{part}-model-filename"
    if not Path(filename).is_file():
        raise FileNotFoundError(f"{flag} {filename}: no such file")
    try:
        meta = read_meta_data(filename)
    except Exception as error:  # onnx raises protobuf DecodeError and others
        raise UsageError(
            f"{flag} {filename}: not an ONNX model (truncated, or not written by "
            f"export-onnx.py): {type(error).__name__}"
        ) from None
    if _ONNX_PART_KEYS[part] not in meta:
        found = [p for p, key in _ONNX_PART_KEYS.items() if key in meta]
        what = f"this is the {found[0]} file" if found else "no export-onnx.py metadata"
        raise UsageError(
            f"{flag} {filename}: {what}, not the {part} (swapped files? export-onnx.py writes "
            "encoder-*.onnx, decoder-*.onnx and joiner-*.onnx)"
        )
    return meta


def run_onnx_pretrained(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """onnx_pretrained.py: onnxruntime; a streaming encoder file (its metadata has
    ``decode_chunk_len``) is run chunk by chunk."""
    from icefall_lite.export.onnx_model import OnnxStreamingEncoder, OnnxTransducer

    params = _parse(parser, argv)
    encoder_file = params["encoder_model_filename"]
    meta = {}
    for part in ("encoder", "decoder", "joiner"):
        meta[part] = _onnx_part_meta(params[f"{part}_model_filename"], part)
    streaming = "decode_chunk_len" in meta["encoder"]
    _check_exported_method(params, streaming, "--encoder-model-filename", encoder_file)
    threads = params["num_threads"]
    model = OnnxTransducer(
        params["decoder_model_filename"],
        params["joiner_model_filename"],
        None if streaming else encoder_file,
        num_threads=threads,
    )
    symbols = read_tokens(params["tokens"])
    if streaming:
        encoder = OnnxStreamingEncoder(encoder_file, threads)
        texts = transcribe_streaming(params, params["sound_files"], encoder, model, symbols)
    else:
        texts = transcribe_offline(params, params["sound_files"], model.run_encoder, model, symbols)
    return print_transcripts(params["sound_files"], texts)
