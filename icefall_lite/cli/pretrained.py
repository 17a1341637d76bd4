"""What the recipes' pretrained.py, jit_pretrained.py and onnx_pretrained.py do once their flags
are parsed: load the model file, transcribe the sound files, print icefall's ``<file>:\n<text>``.
"""

import argparse
import logging
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from icefall_lite.checkpoint import CheckpointError, read_checkpoint, stored_params
from icefall_lite.cli.decode import (
    add_decoding_arguments,
    add_stream_norm_arguments,
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
from icefall_lite.models import build_model
from icefall_lite.search.decoding import CTC_METHODS, TRANSDUCER_METHODS
from icefall_lite.streaming import (
    FeatureNorm,
    StreamingNormalizer,
    load_mel_stats,
    simulated_streaming_input,
)
from icefall_lite.streaming.search import STREAMING_DECODING_METHODS
from icefall_lite.utils import AttributeDict, atomic_open

__all__ = [
    "add_transcribe_arguments",
    "dump_predictions_parser",
    "run_dump_predictions",
    "jit_pretrained_parser",
    "onnx_pretrained_parser",
    "pretrained_parser",
    "run_jit_pretrained",
    "run_onnx_pretrained",
    "run_pretrained",
]


def add_transcribe_arguments(parser: argparse.ArgumentParser, sound_files: bool = True) -> None:
    """``sound_files`` (unless ``sound_files=False``), ``--tokens``, ``--sample-rate``,
    ``--num-threads``, decode.py's search flags and the streaming normalisation flags."""
    if sound_files:
        parser.add_argument(
            "sound_files",
            type=str,
            nargs="+",
            help="Audio files to transcribe (wav, flac, ...; any sample rate; the first "
            "channel of multi-channel files is used).",
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
    add_stream_norm_arguments(parser)


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


def _feature_norm(params: Dict, input_normalization: str) -> Optional[FeatureNorm]:
    """What a streaming export of a model trained on normalised features needs from the
    caller: the whole file's normalisation, or with ``--stream-norm 1`` running statistics."""
    if input_normalization != "utterance":
        return None
    if not params.get("stream_norm"):
        return FeatureNorm(None)
    mean, var = load_mel_stats(params["stream_norm_stats"])
    stats = StreamingNormalizer(mean, var, alpha=params["stream_norm_alpha"])
    return FeatureNorm(stats, reset=params.get("reset_stream_stats", True))


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
    """pretrained.py: the PyTorch model in pretrained.pt. Returns the count of unreadable files.

    Through the Python API (:class:`icefall_lite.ASRModel`): files are decoded in batches, a
    causal model the way chunk-wise streaming would (simulated streaming), and a file longer
    than 30 s chunk by chunk (streamed, or in overlapping windows), so memory does not grow
    with its length; ``--lm-type ngram`` fuses the LM as decode.py does. With
    ``--stream-norm 1``, which the API does not offer, whole files through
    :func:`_pretrained_transcriber`."""
    params = _parse(parser, argv)
    if params.get("stream_norm"):
        transcribe = _pretrained_transcriber(params)
        return print_transcripts(params["sound_files"], transcribe(params["sound_files"]))
    from icefall_lite.api import ASRModel

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
    lm: Dict = {}
    if params.get("lm_type", "none") != "none":
        lm = dict(
            lm_path=params["lm_path"],
            lm_scale=params["lm_scale"],
            word_insertion_bonus=params.get("word_insertion_bonus", 0.0),
        )
        model.lm_fusion(**lm, what="--lm-path")  # loaded once; a bad file named by its flag
    texts = model.transcribe(
        params["sound_files"],
        decoding_method=params["decoding_method"],
        errors="skip",
        **{key: params[key] for key in search_flags},
        **lm,
    )
    return print_transcripts(params["sound_files"], texts)


def _pretrained_transcriber(params: Dict) -> Callable[[Sequence[str]], List[Optional[str]]]:
    """The model of ``--checkpoint`` as a function: sound files -> their texts (None for a
    file that cannot be read)."""
    checkpoint = read_checkpoint(params["checkpoint"])
    model_params = AttributeDict(stored_params(checkpoint))
    if "vocab_size" not in model_params:
        raise UsageError(
            f"--checkpoint {params['checkpoint']}: holds no model params; "
            "expected the pretrained.pt written by export.py"
        )
    model = build_model(model_params)
    try:
        model.load_state_dict(checkpoint["model"])
    except (KeyError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"--checkpoint {params['checkpoint']}: its weights do not fit the model its params "
            f"describe ({first}); export it again with export.py"
        ) from None
    model.eval()
    check_decoding_arguments(params, model)

    chunk = 0
    if model_params.get("causal"):
        # One chunk size and left context (the first entries): in eval mode the encoder would
        # otherwise draw one per batch from the training lists.
        chunk = int(str(model_params.chunk_size).split(",")[0])
        left = int(str(model_params.left_context_frames).split(",")[0])
        model.encoder.chunk_size = [chunk]
        model.encoder.left_context_frames = [left]

    feature_norm = None
    if params.get("stream_norm"):
        feature_norm = _feature_norm(params, getattr(model, "input_normalization", "none"))
        if feature_norm is None:
            raise UsageError(
                f"--stream-norm 1: the model in {params['checkpoint']} does not normalise its "
                "input features"
            )

    def encode(x: Tensor, x_lens: Tensor) -> Tuple[Tensor, Tensor]:
        if feature_norm is not None:
            # Running statistics frame by frame, as a stream computes them.
            rows = [feature_norm.whole(x[i, :n]) for i, n in enumerate(x_lens.tolist())]
            x = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
            return model.forward_encoder(x, x_lens, normalize=False)
        if chunk > 0:
            x, x_lens = simulated_streaming_input(model.encoder_embed, x, x_lens, 2 * chunk)
        return model.forward_encoder(x, x_lens)

    symbols = read_tokens(params["tokens"])
    fusion = None
    if params.get("lm_type", "none") != "none":
        # The LM's words must be the model's tokens (tokens.txt's symbols are the BPE pieces).
        from icefall_lite.lm import load_token_lm_fusion

        fusion = load_token_lm_fusion(
            params["lm_path"], symbols, params["lm_scale"], params.get("word_insertion_bonus", 0.0)
        )
    return lambda files: transcribe_offline(params, files, encode, model, symbols, fusion)


def dump_predictions_parser(description: str) -> argparse.ArgumentParser:
    """The predictions dump's flags: ``--checkpoint``, ``--wav-list``, ``--out-dir`` and the
    transcription flags (without the positional sound files)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", type=str, required=True, help="pretrained.pt written by export.py."
    )
    parser.add_argument(
        "--wav-list",
        type=Path,
        required=True,
        help="A text file naming one sound file per line (blank lines and # comments skipped).",
    )
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="Where <file stem>.txt files are written."
    )
    parser.add_argument("--batch-size", type=int, default=16, help="Files transcribed together.")
    add_transcribe_arguments(parser, sound_files=False)
    return parser


def run_dump_predictions(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """Transcribe every file of ``--wav-list`` with pretrained.pt and write its text to
    ``<out-dir>/<stem>.txt`` (one line; written to a temporary file, then renamed), plus
    ``<out-dir>/predictions.tsv`` (file, text). Returns the count of unreadable files."""
    params = _parse(parser, argv)
    wav_list = Path(params["wav_list"])
    if not wav_list.is_file():
        raise FileNotFoundError(f"--wav-list {wav_list}: no such file")
    files = [
        line.strip()
        for line in wav_list.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    if not files:
        raise UsageError(f"--wav-list {wav_list}: names no sound file")
    if params["batch_size"] < 1:
        raise UsageError(f"--batch-size must be >= 1, got {params['batch_size']}")
    stems: Dict[str, str] = {}
    for f in files:
        stem = Path(f).stem
        if stem in stems:
            raise UsageError(
                f"--wav-list {wav_list}: {stems[stem]} and {f} would both write {stem}.txt; "
                "give the files distinct names"
            )
        stems[stem] = f
    transcribe = _pretrained_transcriber(params)
    out_dir = Path(params["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    size = params["batch_size"]
    for start in range(0, len(files), size):
        batch = files[start : start + size]
        for f, text in zip(batch, transcribe(batch)):
            if text is None:
                failed += 1
                continue
            with atomic_open(out_dir / f"{Path(f).stem}.txt", "w") as out:
                out.write(text + "\n")
            rows.append(f"{f}\t{text}")
    with atomic_open(out_dir / "predictions.tsv", "w") as out:
        out.write("".join(row + "\n" for row in rows))
    logging.info(f"Wrote {len(rows)} predictions to {out_dir} ({failed} unreadable files)")
    return failed


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
        texts = transcribe_streaming(
            params,
            params["sound_files"],
            model,
            model,
            symbols,
            _feature_norm(params, getattr(model, "input_normalization", "none")),
        )
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
    if meta["decoder"].get("stateful") == "1":  # an LSTM transducer: always streaming
        from icefall_lite.export.lstm_onnx import OnnxLstmStreamingEncoder, OnnxLstmTransducer

        encoder = OnnxLstmStreamingEncoder(encoder_file, threads)
        model = OnnxLstmTransducer(
            params["decoder_model_filename"], params["joiner_model_filename"], threads
        )
        feature_norm = _feature_norm(params, encoder.input_normalization)
        texts = transcribe_streaming(
            params,
            params["sound_files"],
            encoder,
            model,
            read_tokens(params["tokens"]),
            feature_norm,
        )
        return print_transcripts(params["sound_files"], texts)
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
