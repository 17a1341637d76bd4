"""Transcribing audio files with a PyTorch, TorchScript or ONNX model (the algorithms of
pretrained.py, jit_pretrained.py and onnx_pretrained.py, whose drivers are in
:mod:`icefall_lite.cli.pretrained`).

Each file is read with :func:`icefall_lite.audio.read_audio` (resampled / first channel, with a
note); an unreadable file is reported with its name and the others are still transcribed.
Features are the training fbank (:func:`icefall_lite.audio.compute_fbank`). Non-streaming
models run a search from :mod:`icefall_lite.search` on the batch; streaming models (chunk-wise
TorchScript or ONNX encoders) run :func:`icefall_lite.streaming.streaming_decode`.
"""

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from icefall_lite.audio import compute_fbank, read_audio_files
from icefall_lite.errors import UsageError
from icefall_lite.models.interface import ChunkEncoder
from icefall_lite.search.decoding import search
from icefall_lite.streaming import (
    LOG_EPS,
    TAIL_PADDING_FRAMES,
    FeatureNorm,
    StreamingSearch,
    streaming_decode,
)

__all__ = [
    "parse_tokens",
    "read_tokens",
    "tokens_to_text",
    "transcribe_offline",
    "transcribe_streaming",
    "print_transcripts",
]

PathLike = Union[str, Path]
Encode = Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]]


def read_tokens(filename: PathLike) -> List[str]:
    """Symbols of ``tokens.txt`` (``<symbol> <id>`` lines) indexed by id."""
    path = Path(filename)
    if not path.is_file():
        raise FileNotFoundError(f"--tokens {filename}: no such file")
    return parse_tokens(path.read_text(encoding="utf-8"), str(filename))


def parse_tokens(text: str, name: str = "tokens.txt") -> List[str]:
    """Symbols of the text of a ``tokens.txt`` indexed by id (``name`` for messages)."""
    table: Dict[int, str] = {}
    for line_number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise UsageError(f"{name}:{line_number}: expected '<symbol> <id>', got {line!r}")
        table[int(fields[1])] = fields[0]
    if not table:
        raise UsageError(f"{name}: no '<symbol> <id>' lines")
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
    fusion: Optional[Any] = None,
) -> List[Optional[str]]:
    """Transcribe whole files in one batch (``fusion``: an LM fused into the search, see
    ``icefall_lite.search.lm_fusion``).

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
    results = iter(search(params, search_model, encoder_out, encoder_out_lens, fusion=fusion))
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
    feature_norm: Optional[FeatureNorm] = None,
) -> List[Optional[str]]:
    """Transcribe files chunk by chunk with a streaming encoder (all files decoded together).

    ``params`` needs ``sample_rate`` and the search flags; ``decoding_method`` must be a
    streaming one (greedy_search, modified_beam_search, fast_beam_search). ``feature_norm``:
    for a model trained on normalised features (see :func:`streaming_decode`).
    """
    features = _features(filenames, params["sample_rate"])
    streaming_search = StreamingSearch.from_settings(search_model, params)
    utterances = [(str(i), f) for i, f in enumerate(features) if f is not None]
    results, _ = streaming_decode(
        encoder,
        streaming_search,
        utterances,
        tail_padding_frames=getattr(encoder, "tail_padding_frames", TAIL_PADDING_FRAMES),
        feature_norm=feature_norm,
    )
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
