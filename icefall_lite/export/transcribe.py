"""Transcribing wav files with a PyTorch, TorchScript or ONNX model: what pretrained.py,
jit_pretrained.py and onnx_pretrained.py share.

Each file is read with :func:`icefall_lite.audio.read_audio` (resampled / first channel, with a
note); an unreadable file is reported with its name and the others are still transcribed.
Features are the training fbank (:func:`icefall_lite.audio.compute_fbank`). Non-streaming
models run a search from :mod:`icefall_lite.search` on the batch; streaming models (chunk-wise
TorchScript or ONNX encoders) run :func:`icefall_lite.streaming.streaming_decode`.
"""

import argparse
import logging
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from icefall_lite.audio import compute_fbank, read_audio_files
from icefall_lite.search.decoding import add_decoding_arguments, search
from icefall_lite.streaming import LOG_EPS, ChunkEncoder, StreamingSearch, streaming_decode

__all__ = [
    "add_transcribe_arguments",
    "jit_pretrained_parser",
    "onnx_pretrained_parser",
    "pretrained_parser",
    "run_jit_pretrained",
    "run_onnx_pretrained",
    "run_pretrained",
    "read_tokens",
    "tokens_to_text",
    "transcribe_offline",
    "transcribe_streaming",
    "print_transcripts",
]

PathLike = Union[str, Path]
Encode = Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]]


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


def read_tokens(filename: PathLike) -> List[str]:
    """Symbols of ``tokens.txt`` (``<symbol> <id>`` lines) indexed by id."""
    path = Path(filename)
    if not path.is_file():
        raise FileNotFoundError(f"--tokens {filename}: no such file")
    table: Dict[int, str] = {}
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise ValueError(f"{filename}:{line_number}: expected '<symbol> <id>', got {line!r}")
        table[int(fields[1])] = fields[0]
    return [table.get(i, "<unk>") for i in range(max(table) + 1)]


def tokens_to_text(token_ids: Sequence[int], symbols: Sequence[str]) -> str:
    """BPE pieces joined, ``▁`` as word boundary: ``[▁HE, LLO]`` -> ``HELLO``."""
    return "".join(symbols[i] for i in token_ids).replace("▁", " ").strip()


def _features(filenames: Sequence[str], sample_rate: int) -> List[Optional[Tensor]]:
    waves = read_audio_files(filenames, sample_rate)
    readable = [w for w in waves if w is not None]
    feats = iter(compute_fbank(readable, sample_rate) if readable else [])
    return [None if w is None else next(feats) for w in waves]


@torch.no_grad()
def transcribe_offline(
    params: Mapping,
    filenames: Sequence[str],
    encode: Encode,
    search_model: nn.Module,
    symbols: Sequence[str],
) -> List[Optional[str]]:
    """Transcribe whole files in one batch.

    Args:
      params: ``sample_rate`` and the search flags (``decoding_method``, ``beam_size``, ...).
      encode: (N, T, 80) fbank and (N,) lengths -> encoder output (N, T', C) and (N,) lengths
        (e.g. ``model.forward_encoder``).
      search_model: has ``decoder`` and ``joiner`` for the search.
      symbols: from :func:`read_tokens`.
    Returns:
      one text per file, ``None`` for a file that could not be read.
    """
    features = _features(filenames, params["sample_rate"])
    present = [f for f in features if f is not None]
    texts: List[Optional[str]] = [None] * len(features)
    if not present:
        return texts
    lens = torch.tensor([f.size(0) for f in present])
    x = torch.nn.utils.rnn.pad_sequence(present, batch_first=True, padding_value=LOG_EPS)
    encoder_out, encoder_out_lens = encode(x, lens)
    results = iter(search(params, search_model, encoder_out, encoder_out_lens))
    for i, f in enumerate(features):
        if f is not None:
            texts[i] = tokens_to_text(next(results).tokens, symbols)
    return texts


@torch.no_grad()
def transcribe_streaming(
    params: Mapping,
    filenames: Sequence[str],
    encoder: ChunkEncoder,
    search_model: nn.Module,
    symbols: Sequence[str],
) -> List[Optional[str]]:
    """Transcribe files chunk by chunk with a streaming encoder (all files decoded together).

    ``params`` needs ``sample_rate`` and the search flags; ``decoding_method`` must be a
    streaming one (greedy_search, modified_beam_search, fast_beam_search).
    """
    features = _features(filenames, params["sample_rate"])
    streaming_search = StreamingSearch(
        search_model,
        params["decoding_method"],
        max_sym_per_frame=params["max_sym_per_frame"],
        beam_size=params["beam_size"],
        beam=params["beam"],
        max_states=params["max_states"],
        max_contexts=params["max_contexts"],
    )
    utterances = [(str(i), f) for i, f in enumerate(features) if f is not None]
    results, _ = streaming_decode(encoder, streaming_search, utterances)
    return [
        None if f is None else tokens_to_text(results[str(i)].tokens, symbols)
        for i, f in enumerate(features)
    ]


def print_transcripts(filenames: Sequence[str], texts: Sequence[Optional[str]]) -> int:
    """Log ``<file>:\\n<text>`` for each file (icefall's format); returns the number of files
    that could not be transcribed."""
    lines = []
    for filename, text in zip(filenames, texts):
        lines.append(f"{filename}:\n{text if text is not None else '<unreadable, see above>'}\n")
    print("\n".join(lines))
    return sum(t is None for t in texts)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Dict:
    params = dict(vars(parser.parse_args(list(argv))))
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    torch.set_num_threads(params["num_threads"])
    return params


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
    """pretrained.py: PyTorch model from pretrained.pt. A causal model decodes whole files the
    way chunk-wise streaming would (simulated streaming). Returns the count of unreadable
    files."""
    from icefall_lite.checkpoint import read_checkpoint
    from icefall_lite.models import build_model
    from icefall_lite.search.model_loading import stored_params
    from icefall_lite.streaming import simulated_streaming_input
    from icefall_lite.utils import AttributeDict

    params = _parse(parser, argv)
    checkpoint = read_checkpoint(params["checkpoint"])
    model_params = AttributeDict(stored_params(checkpoint))
    if "vocab_size" not in model_params:
        raise ValueError(
            f"--checkpoint {params['checkpoint']}: holds no model params; "
            "expected the pretrained.pt written by export.py"
        )
    model = build_model(model_params)
    model.load_state_dict(checkpoint["model"])
    model.eval()

    chunk = 0
    if model_params.get("causal"):
        # One chunk size and left context (the first entries): in eval mode the encoder would
        # otherwise draw one per batch from the training lists.
        chunk = int(str(model_params.chunk_size).split(",")[0])
        left = int(str(model_params.left_context_frames).split(",")[0])
        model.encoder.chunk_size = [chunk]
        model.encoder.left_context_frames = [left]

    def encode(x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        if chunk > 0:
            x, x_lens = simulated_streaming_input(model.encoder_embed, x, x_lens, 2 * chunk)
        return model.forward_encoder(x, x_lens)

    symbols = read_tokens(params["tokens"])
    texts = transcribe_offline(params, params["sound_files"], encode, model, symbols)
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
    model = torch.jit.load(filename, map_location="cpu")
    model.eval()
    symbols = read_tokens(params["tokens"])
    if hasattr(model, "get_init_states"):
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


def run_onnx_pretrained(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """onnx_pretrained.py: onnxruntime; a streaming encoder file (its metadata has
    ``decode_chunk_len``) is run chunk by chunk."""
    from icefall_lite.export.onnx import read_meta_data
    from icefall_lite.export.onnx_model import OnnxStreamingEncoder, OnnxTransducer

    params = _parse(parser, argv)
    encoder_file = params["encoder_model_filename"]
    if not Path(encoder_file).is_file():
        raise FileNotFoundError(f"--encoder-model-filename {encoder_file}: no such file")
    streaming = "decode_chunk_len" in read_meta_data(encoder_file)
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
