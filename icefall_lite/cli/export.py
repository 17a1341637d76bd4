"""What the recipes' ``export.py`` and ``export-onnx.py`` do once their flags are parsed.

Both load the model exactly as decode.py does (``--epoch/--iter/--avg/--use-averaged-model``;
architecture from the checkpoint's params), then write into ``--exp-dir``:

* export.py: ``pretrained.pt`` (a checkpoint holding the averaged weights and the params, so
  pretrained.py needs no model flag); the one-file model package ``model-<tag>.icefall``
  (weights, config, tokens.txt and bpe.model: ``ASRModel.restore_from`` and
  ``python -m icefall_lite.transcribe --model`` read it); with ``--jit 1`` also
  ``jit_script.pt`` or, for a causal model, ``jit_script_chunk_<C>_left_<L>.pt``;
* export-onnx.py: ``encoder-<tag>.onnx``, ``decoder-<tag>.onnx``, ``joiner-<tag>.onnx``, their
  ``.int8.onnx`` versions and ``tokens.txt``; ``<tag>`` is ``epoch-30-avg-9`` (or
  ``iter-...``), plus ``-chunk-16-left-128`` for the streaming encoder of a causal model.
"""

import argparse
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from icefall_lite.checkpoint import add_model_averaging_arguments, save_checkpoint
from icefall_lite.cli.checkpoints import (
    build_averaged_model,
    explicit_arguments,
    model_flag_names,
    resolve_model_params,
)
from icefall_lite.export.metadata import (
    decoder_meta_data,
    joiner_meta_data,
    offline_encoder_meta_data,
    streaming_encoder_meta_data,
)
from icefall_lite.export.onnx import (
    export_decoder_onnx,
    export_encoder_onnx,
    export_joiner_onnx,
    export_streaming_encoder_onnx,
    quantize_int8,
)
from icefall_lite.export.torchscript import export_jit_script, jit_script_filename
from icefall_lite.models import add_zipformer_model_arguments, build_model
from icefall_lite.models.zipformer.presets import parse_int_list
from icefall_lite.utils import AttributeDict, atomic_open, setup_logger, str2bool

__all__ = [
    "get_ctc_export_parser",
    "get_export_parser",
    "model_tag",
    "run_export",
    "run_export_ctc",
    "run_export_onnx",
    "write_model_package",
]


def get_export_parser(
    description: str,
    onnx: bool = False,
    add_model_flags: Callable[[argparse.ArgumentParser], None] = add_zipformer_model_arguments,
) -> argparse.ArgumentParser:
    """Flags of export.py (``onnx=False``) or export-onnx.py; ``add_model_flags``: the model
    family's flags (default: the Zipformer's)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_model_averaging_arguments(parser)
    parser.add_argument(
        "--tokens",
        type=str,
        default="data/lang_bpe_500/tokens.txt",
        help="tokens.txt of the BPE model the model was trained with.",
    )
    if onnx:
        parser.add_argument("--opset-version", type=int, default=13, help="ONNX opset.")
    else:
        parser.add_argument(
            "--bpe-model",
            type=str,
            default="data/lang_bpe_500/bpe.model",
            help="SentencePiece model put into the model package beside tokens.txt "
            "(left out, with a warning, when the file does not exist).",
        )
        parser.add_argument(
            "--jit",
            type=str2bool,
            default=False,
            help="Also write a torch.jit.script model (jit_script*.pt).",
        )
    add_model_flags(parser)
    return parser


def model_tag(params: Mapping[str, Any]) -> str:
    """``epoch-30-avg-9`` / ``iter-1000-avg-4``, as icefall names exported files."""
    if params.get("iter", 0) > 0:
        return f"iter-{params['iter']}-avg-{params['avg']}"
    return f"epoch-{params['epoch']}-avg-{params['avg']}"


def _load(parser: argparse.ArgumentParser, argv: Sequence[str], defaults, log_name: str):
    args = parser.parse_args(list(argv))
    explicit = explicit_arguments(parser, argv)
    params = AttributeDict(defaults)
    params.update(vars(args))
    params.exp_dir = Path(params.exp_dir)
    files = resolve_model_params(params, model_flag_names(), explicit)
    if params.get("causal") and params.get("model_family", "zipformer") == "zipformer":
        params.chunk_size = parse_int_list(params.chunk_size, "--chunk-size")[0]
        params.left_context_frames = parse_int_list(
            params.left_context_frames, "--left-context-frames"
        )[0]
    setup_logger(f"{params.exp_dir}/log/{log_name}")
    logging.info(params)
    model = build_averaged_model(params, build_model, "cpu", files)
    return params, model


def run_export(
    parser: argparse.ArgumentParser, argv: Sequence[str], defaults: Mapping[str, Any]
) -> Dict[str, Path]:
    """export.py. Returns the written files by kind (``pretrained``, ``package``, ``jit``)."""
    params, model = _load(parser, argv, defaults, "log-export")
    written = {}
    filename = params.exp_dir / "pretrained.pt"
    # A regular checkpoint (weights + params at the top level, no optimizer): pretrained.py
    # rebuilds the model from it without any flag.
    save_checkpoint(filename, model, params=dict(params))
    written["pretrained"] = filename
    package = write_model_package(params, model)
    if package is not None:
        written["package"] = package
    if params.jit:
        # A family causal by construction (the LSTM transducer) exports its chunk-wise model.
        causal = bool(params.get("causal") or getattr(model, "causal", False))
        jit_file = params.exp_dir / jit_script_filename(
            causal, params.get("chunk_size", 0), params.get("left_context_frames", 0)
        )
        export_jit_script(
            model,
            jit_file,
            causal=causal,
            chunk_size=params.get("chunk_size", 0),
            left_context_frames=params.get("left_context_frames", 0),
        )
        written["jit"] = jit_file
    return written


def write_model_package(params: Mapping[str, Any], model: Any) -> Optional[Path]:
    """Write ``<exp-dir>/model-<tag>.icefall`` (see :mod:`icefall_lite.api.package`) from the
    loaded model; None (with a warning) when ``--tokens`` does not exist."""
    from icefall_lite.api import PACKAGE_SUFFIX, ASRModel, make_config
    from icefall_lite.models.registry import DEFAULT_FAMILY

    tokens = Path(params["tokens"])
    if not tokens.is_file():
        logging.warning(f"--tokens {tokens}: no such file; no model package written")
        return None
    bpe = Path(params.get("bpe_model") or "")
    bpe_bytes = bpe.read_bytes() if bpe.is_file() else None
    if bpe_bytes is None:
        logging.warning(f"--bpe-model {bpe}: no such file; the package holds tokens.txt only")
    config = make_config(params.get("model_family") or DEFAULT_FAMILY, params)
    asr = ASRModel(model, config, tokens.read_text(encoding="utf-8"), bpe_bytes)
    path = asr.save_to(Path(params["exp_dir"]) / f"model-{model_tag(params)}{PACKAGE_SUFFIX}")
    logging.info(f"Wrote the model package {path}")
    return path


def run_export_onnx(
    parser: argparse.ArgumentParser, argv: Sequence[str], defaults: Mapping[str, Any]
) -> Dict[str, Path]:
    """export-onnx.py. Returns the written files by kind (``encoder``, ``encoder.int8``, ...)."""
    params, model = _load(parser, argv, defaults, "log-export-onnx")
    tokens = Path(params.tokens)
    if not tokens.is_file():
        raise FileNotFoundError(f"--tokens {tokens}: no such file (made by prepare.sh)")
    tag = model_tag(params)
    if params.get("model_family") == "lstm_transducer":
        return _export_lstm_onnx(params, model, tokens, tag)
    causal = bool(params.get("causal"))
    encoder_tag = tag
    if causal:
        encoder_tag += f"-chunk-{params.chunk_size}-left-{params.left_context_frames}"
    out = params.exp_dir
    files = {
        "encoder": out / f"encoder-{encoder_tag}.onnx",
        "decoder": out / f"decoder-{tag}.onnx",
        "joiner": out / f"joiner-{tag}.onnx",
    }
    opset = params.opset_version
    if causal:
        streaming = model.streaming_encoder(params.chunk_size, params.left_context_frames)
        meta = streaming_encoder_meta_data(params, params.chunk_size, params.left_context_frames)
        export_streaming_encoder_onnx(
            streaming, model.joiner.encoder_proj, files["encoder"], meta, opset
        )
    else:
        export_encoder_onnx(
            model, files["encoder"], offline_encoder_meta_data(), opset_version=opset
        )
    export_decoder_onnx(
        model.decoder,
        model.joiner.decoder_proj,
        files["decoder"],
        decoder_meta_data(model.decoder.context_size, model.decoder.vocab_size),
        opset,
    )
    joiner_dim = model.joiner.output_linear.in_features
    export_joiner_onnx(model.joiner, files["joiner"], joiner_meta_data(joiner_dim), opset)
    return _quantize_and_copy_tokens(params, files, tokens)


def _export_lstm_onnx(params: AttributeDict, model: Any, tokens: Path, tag: str) -> Dict[str, Path]:
    """The LSTM transducer's streaming encoder (``--chunk-size`` encoder frames), recurrent
    decoder and joiner (see :mod:`icefall_lite.export.lstm_onnx`)."""
    from icefall_lite.export.lstm_onnx import export_lstm_transducer_onnx

    chunk = int(params.chunk_size)
    out = params.exp_dir
    files = {
        "encoder": out / f"encoder-{tag}-chunk-{chunk}.onnx",
        "decoder": out / f"decoder-{tag}.onnx",
        "joiner": out / f"joiner-{tag}.onnx",
    }
    export_lstm_transducer_onnx(model, files, chunk, params.opset_version)
    return _quantize_and_copy_tokens(params, files, tokens)


def _quantize_and_copy_tokens(
    params: AttributeDict, files: Dict[str, Path], tokens: Path
) -> Dict[str, Path]:
    out = params.exp_dir
    written = dict(files)
    for kind, op_types in (
        ("encoder", ("MatMul",)),
        ("decoder", ("MatMul", "Gather")),
        ("joiner", ("MatMul",)),
    ):
        int8 = files[kind].with_suffix(".int8.onnx")
        quantize_int8(files[kind], int8, op_types)
        written[f"{kind}.int8"] = int8
    tokens_out = out / "tokens.txt"
    if tokens.resolve() != tokens_out.resolve():
        with atomic_open(tokens_out, "w") as f:
            f.write(tokens.read_text(encoding="utf-8"))
    written["tokens"] = tokens_out
    logging.info(f"Wrote {', '.join(str(p) for p in written.values())}")
    return written


def get_ctc_export_parser(
    description: str, add_model_flags: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """Flags of a CTC-only recipe's export.py: checkpoint selection, ``--tokens``, ``--jit``,
    ``--onnx``, ``--opset-version`` and the family's model flags."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_model_averaging_arguments(parser)
    parser.add_argument(
        "--tokens",
        type=str,
        default="data/lang_bpe_500/tokens.txt",
        help="tokens.txt of the BPE model the model was trained with (copied beside the ONNX "
        "file).",
    )
    parser.add_argument(
        "--jit", type=str2bool, default=False, help="Also write jit_script.pt (torch.jit.script)."
    )
    parser.add_argument(
        "--onnx", type=str2bool, default=False, help="Also write ctc-<tag>.onnx and tokens.txt."
    )
    parser.add_argument("--opset-version", type=int, default=13, help="ONNX opset.")
    add_model_flags(parser)
    return parser


def run_export_ctc(
    parser: argparse.ArgumentParser, argv: Sequence[str], defaults: Mapping[str, Any]
) -> Dict[str, Path]:
    """export.py of a CTC-only model: ``pretrained.pt`` and the one-file model package
    ``model-<tag>.icefall`` (as the transducers' export.py writes it); ``--jit 1``:
    ``jit_script.pt``; ``--onnx 1``: ``ctc-<tag>.onnx`` (encoder + CTC head, see
    ``icefall_lite.export.ctc``) and ``tokens.txt``. Returns the written files by kind."""
    from icefall_lite.export.ctc import export_ctc_jit, export_ctc_onnx

    params, model = _load(parser, argv, defaults, "log-export")
    written = {}
    filename = params.exp_dir / "pretrained.pt"
    save_checkpoint(filename, model, params=dict(params))
    written["pretrained"] = filename
    package = write_model_package(params, model)
    if package is not None:
        written["package"] = package
    if params.jit:
        written["jit"] = params.exp_dir / "jit_script.pt"
        export_ctc_jit(model, written["jit"])
    if params.onnx:
        tokens = Path(params.tokens)
        if not tokens.is_file():
            raise FileNotFoundError(f"--tokens {tokens}: no such file (made by prepare.sh)")
        written["onnx"] = params.exp_dir / f"ctc-{model_tag(params)}.onnx"
        meta = {
            "model_type": str(params.get("model_family", "ctc")),
            "vocab_size": str(params.vocab_size),
            "subsampling_factor": str(model.subsampling_factor),
            "blank_id": "0",
            "feature_dim": str(params.get("feature_dim", 80)),
        }
        export_ctc_onnx(
            model,
            written["onnx"],
            meta,
            feature_dim=params.get("feature_dim", 80),
            opset_version=params.opset_version,
        )
        tokens_out = params.exp_dir / "tokens.txt"
        if tokens.resolve() != tokens_out.resolve():
            with atomic_open(tokens_out, "w") as f:
                f.write(tokens.read_text(encoding="utf-8"))
        written["tokens"] = tokens_out
    logging.info(f"Wrote {', '.join(str(p) for p in written.values())}")
    return written
