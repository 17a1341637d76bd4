"""``icefall_lite.ASRModel``: a trained model in one file, and transcription in two lines::

    model = ASRModel.restore_from("exp/model-epoch-6-avg-2.icefall")
    texts = model.transcribe(["a.wav", "b.flac"], batch_size=8)

The model is built from its package (:mod:`icefall_lite.api.package`) through the model-family
registry (:mod:`icefall_lite.models.registry`) and decoded through the model interface
(:mod:`icefall_lite.models.interface`) and the library's searches, so every family works the same
way: a CTC-only model gets ``ctc_greedy_search``, a transducer greedy or beam searches, and a
causal model streams long inputs.

Inputs (``audio``): a path, a 1-D numpy array or torch tensor (``sample_rate`` Hz, default
16 kHz; other rates are resampled), a NeMo JSON manifest (``.json``/``.jsonl``, one input per
line, ``offset``/``duration`` honoured), a Kaldi ``wav.scp`` (``.scp``), or a list of any of these.
Files of any sample rate and channel count are read (resampled, first channel, with a note).
Inputs longer than ``long_audio_seconds`` go through :mod:`icefall_lite.api.long_audio`, with
memory bounded whatever their length.

A token-level n-gram LM (an ARPA file over the package's tokens, as prepare.sh's LM stage
builds it) is fused into ``ctc_prefix_beam_search`` and ``modified_beam_search`` as decode.py's
``--lm-type ngram`` fuses it::

    texts = model.transcribe(files, decoding_method="ctc_prefix_beam_search",
                             lm_path="data/lm/lang_bpe_500_5gram.arpa", lm_scale=0.3)
"""

import contextlib
import logging
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from icefall_lite.api.hypothesis import Hypothesis, make_hypothesis
from icefall_lite.api.long_audio import (
    SegmentingSearch,
    decode_windows,
    iter_windows,
    stream_features,
)
from icefall_lite.api.package import (
    PACKAGE_SUFFIX,
    ModelPackage,
    PackageError,
    json_params,
    read_package,
    write_package,
)
from icefall_lite.audio import (
    AudioReadError,
    audio_duration,
    compute_fbank,
    iter_fbank_chunks,
    iter_waveform_blocks,
)
from icefall_lite.checkpoint import read_checkpoint, stored_params
from icefall_lite.errors import UsageError
from icefall_lite.export.transcribe import parse_tokens
from icefall_lite.models.interface import has_ctc_head, has_transducer
from icefall_lite.models.registry import DEFAULT_FAMILY, build_model
from icefall_lite.search.decoding import (
    CTC_METHODS,
    DECODING_METHODS,
    LM_METHODS,
    TRANSDUCER_METHODS,
    search,
)
from icefall_lite.search.hypothesis import DecodingResult
from icefall_lite.search.lm_fusion import LmFusion
from icefall_lite.streaming import LOG_EPS, STREAMING_DECODING_METHODS, StreamingSearch
from icefall_lite.streaming.stream import encode_utterances
from icefall_lite.utils import AttributeDict

__all__ = ["ASRModel", "AudioInput", "MODELS_ENV", "default_model_dirs", "make_config"]

AudioInput = Union[str, Path, np.ndarray, Tensor]
PathLike = Union[str, Path]

SAMPLE_RATE = 16000
# Where from_pretrained() looks for <name>.icefall: $ICEFALL_LITE_MODELS (colon-separated
# folders), then the cache.
MODELS_ENV = "ICEFALL_LITE_MODELS"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "icefall_lite"

# Search settings and their defaults (decode.py's flag defaults).
SEARCH_DEFAULTS: Dict[str, Any] = {
    "decoding_method": "greedy_search",
    "beam_size": 4,
    "beam": 20.0,
    "max_contexts": 8,
    "max_states": 64,
    "max_sym_per_frame": 1,
    "num_paths": 200,
    "nbest_scale": 0.5,
    # n-gram LM shallow fusion (decode.py's --lm-type ngram --lm-path --lm-scale
    # --word-insertion-bonus): an ARPA file over the package's tokens; None: no LM.
    "lm_path": None,
    "lm_scale": 0.3,
    "word_insertion_bonus": 0.0,
    # A causal model's files and long-audio windows: False decodes them with the package's
    # streaming chunks (what streaming gives, decode.py's default for it); True with full
    # context (decode.py --chunk-size -1 --left-context-frames -1), better where latency does
    # not matter. Long audio that is streamed is always chunk by chunk.
    "full_context": False,
}
# Long-audio settings: inputs longer than long_audio_seconds are decoded in windows of
# chunk_seconds overlapping by overlap_seconds (or streamed, for a causal model).
LONG_AUDIO_DEFAULTS: Dict[str, Any] = {
    "long_audio": "auto",
    "long_audio_seconds": 30.0,
    "chunk_seconds": 20.0,
    "overlap_seconds": 4.0,
    # Long audio with a transducer: blank seconds after a token that end a segment (the
    # search restarts; see long_audio.SegmentingSearch); 0: never.
    "endpoint_seconds": 1.0,
}
LONG_AUDIO_MODES = ("auto", "streaming", "chunked")
# transcribe() reads this many batches of inputs ahead and batches them by length.
GROUP_BATCHES = 4


def default_model_dirs() -> List[Path]:
    """Folders :meth:`ASRModel.from_pretrained` searches: ``$ICEFALL_LITE_MODELS``, then
    ``~/.cache/icefall_lite/models``."""
    dirs = [Path(d) for d in os.environ.get(MODELS_ENV, "").split(os.pathsep) if d]
    return dirs + [CACHE_DIR / "models"]


def make_config(
    family: str, params: Mapping[str, Any], decoding: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """The ``config.json`` of a package.

    Args:
      family: a registered model family (``"zipformer"``).
      params: what the family's builder reads (stored as JSON; non-JSON entries are dropped).
      decoding: decoding defaults (``decoding_method``, ``beam_size``, ...).
    """
    return {
        "model_family": family,
        "model_params": json_params(params),
        "features": {
            "type": "fbank",
            "num_mel_bins": int(params.get("feature_dim", 80)),
            "sample_rate": SAMPLE_RATE,
            "frame_shift_seconds": 0.01,
            "frame_length_seconds": 0.025,
        },
        "decoding": dict(decoding or {}),
    }


def _first_int(value: Any, default: int = -1) -> int:
    """``16`` from ``16``, ``"16,32"`` or ``[16, 32]``."""
    if value is None:
        return default
    if isinstance(value, (list, tuple)):
        value = value[0] if value else default
    return int(str(value).split(",")[0])


@dataclass
class _Input:
    """One input: a file (segment) or a waveform; ``name`` for messages and results."""

    index: int
    name: str
    path: Optional[str] = None
    wave: Optional[Tensor] = None
    offset: float = 0.0
    duration: Optional[float] = None
    line: Dict[str, Any] = field(default_factory=dict)  # its NeMo manifest line, if any

    def seconds(self) -> float:
        if self.wave is not None:
            return self.wave.numel() / SAMPLE_RATE
        if self.duration is not None:
            return self.duration
        return audio_duration(self.path) - self.offset

    def blocks(self, block_seconds: float) -> Iterator[Tensor]:
        if self.wave is not None:
            step = max(1, int(block_seconds * SAMPLE_RATE))
            for start in range(0, self.wave.numel(), step):
                yield self.wave[start : start + step]
            return
        yield from iter_waveform_blocks(
            self.path, SAMPLE_RATE, block_seconds, self.offset, self.duration
        )

    def waveform(self) -> Tensor:
        wave = torch.cat(list(self.blocks(60.0)))
        if wave.numel() == 0:
            raise AudioReadError(f"{self.name}: no samples")
        return wave


def _as_waveform(array: Any, name: str, sample_rate: int) -> Tensor:
    """A 1-D numpy array or tensor as float32 at 16 kHz."""
    wave = torch.as_tensor(np.asarray(array) if isinstance(array, np.ndarray) else array)
    if wave.ndim != 1:
        raise UsageError(
            f"{name}: expected a 1-D (mono) waveform, got shape {tuple(wave.shape)}; "
            "pass one channel, e.g. wave[0] or wave.mean(0)"
        )
    if wave.numel() == 0:
        raise AudioReadError(f"{name}: empty waveform (0 samples)")
    if not wave.is_floating_point():
        wave = wave.float() / float(torch.iinfo(wave.dtype).max + 1)  # int16 PCM and the like
    wave = wave.detach().to("cpu", torch.float32)
    if sample_rate != SAMPLE_RATE:
        from lhotse.augmentation.resample import Resample

        logging.info(f"{name}: resampling from {sample_rate} Hz to {SAMPLE_RATE} Hz")
        wave = Resample(sample_rate, SAMPLE_RATE)(wave.unsqueeze(0)).squeeze(0)
    return wave


def _wav_scp(path: Path) -> Iterator[tuple]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) != 2 or fields[1].rstrip().endswith("|"):
            raise UsageError(
                f"{path}:{number}: expected '<utterance-id> <audio file>' (commands ending in "
                f"'|' are not run), got {line!r}"
            )
        audio = fields[1].strip()
        if not os.path.isabs(audio):
            audio = str(path.parent / audio)
        yield fields[0], audio


def _expand(audio: Any, sample_rate: int) -> Iterator[_Input]:
    """The inputs ``audio`` names, in order, read lazily (manifests line by line)."""
    from icefall_lite.data.nemo import entry_line, read_nemo_manifest

    counter = iter(range(1 << 62))

    def walk(item: Any, name: str) -> Iterator[_Input]:
        if isinstance(item, (str, Path)):
            path = Path(item)
            if path.suffix in (".json", ".jsonl"):
                if not path.is_file():
                    raise AudioReadError(f"{path}: no such manifest")
                for entry in read_nemo_manifest(path, require_text=False):
                    yield _Input(
                        next(counter),
                        entry.audio_path,
                        entry.audio_path,
                        offset=entry.offset,
                        duration=entry.duration,
                        line=entry_line(entry),
                    )
            elif path.suffix == ".scp":
                if not path.is_file():
                    raise AudioReadError(f"{path}: no such wav.scp")
                for key, file in _wav_scp(path):
                    yield _Input(next(counter), key, file)
            else:
                yield _Input(next(counter), str(item), str(item))
        elif isinstance(item, (np.ndarray, Tensor)):
            yield _Input(next(counter), name, wave=_as_waveform(item, name, sample_rate))
        elif isinstance(item, Iterable) and not isinstance(item, (bytes, dict)):
            for i, sub in enumerate(item):
                yield from walk(sub, f"audio[{i}]")
        else:
            raise UsageError(
                f"{name}: cannot transcribe a {type(item).__name__}; expected a path, a 1-D "
                "numpy array or torch tensor, or a list of those"
            )

    yield from walk(audio, "audio")


class ASRModel:
    """A speech recogniser: a model of any registered family, its tokens and its settings.

    Build one with :meth:`restore_from` (a package), :meth:`from_pretrained` (a name),
    :meth:`from_checkpoint` (export.py's ``pretrained.pt`` or a training checkpoint and
    ``tokens.txt``) or the constructor.

    Args:
      model: the acoustic model (the members of :mod:`icefall_lite.models.interface`).
      config: as :func:`make_config` makes it.
      tokens: the text of ``tokens.txt``.
      bpe_model: bytes of ``bpe.model`` (kept for :meth:`save_to`), or None.
      normalization: ``{"mean": (F,), "std": (F,)}`` applied to the fbank, or None.
    """

    def __init__(
        self,
        model: nn.Module,
        config: Mapping[str, Any],
        tokens: str,
        bpe_model: Optional[bytes] = None,
        normalization: Optional[Mapping[str, Tensor]] = None,
    ) -> None:
        self.model = model.eval()
        self.config = dict(config)
        self.tokens_text = tokens
        self.symbols = parse_tokens(tokens)
        self.bpe_model = bpe_model
        self.normalization = dict(normalization) if normalization is not None else None
        params = self.config["model_params"]
        self.causal = bool(params.get("causal", False))
        self.chunk_size = _first_int(params.get("chunk_size"))
        self.left_context_frames = _first_int(params.get("left_context_frames"))
        if len(self.symbols) != getattr(model, "vocab_size", len(self.symbols)):
            raise UsageError(
                f"tokens.txt has {len(self.symbols)} symbols but the model has vocab_size "
                f"{model.vocab_size}"
            )
        # Encoder frames per fbank frame, from the model itself (4 for Conv2dSubsampling).
        probe = 10000
        self.subsampling = max(1, int(round(probe / float(model.output_frames(probe)))))
        self.frame_shift = 0.01 * self.subsampling
        self._streaming_encoder = None
        self._lm_fusions: Dict[tuple, LmFusion] = {}

    # ------------------------------------------------------------------ building and saving
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def model_family(self) -> str:
        return str(self.config["model_family"])

    @classmethod
    def _from_package(cls, package: ModelPackage, path: PathLike, map_location: Any) -> "ASRModel":
        family = package.config["model_family"]
        try:
            # The package's family wins over a model_family among its params.
            model = build_model(AttributeDict(package.config["model_params"], model_family=family))
        except UsageError as error:
            raise PackageError(f"{path}: {error}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise PackageError(
                f"{path}: config.json's model_params do not describe a {family} model "
                f"({type(error).__name__}: {error})"
            ) from None
        try:
            model.load_state_dict(package.state_dict)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise PackageError(
                f"{path}: model.pt does not fit the model config.json describes ({first})"
            ) from None
        model.to(map_location)
        return cls(model, package.config, package.tokens, package.bpe_model, package.normalization)

    @classmethod
    def restore_from(cls, path: PathLike, map_location: Any = "cpu") -> "ASRModel":
        """Load a package written by :meth:`save_to` or export.py (no pickled code runs).

        Raises:
          PackageError: missing file, not a package, a member missing or broken, an unknown
            model family (the message names the file and what is wrong).
        """
        return cls._from_package(read_package(path, map_location), path, map_location)

    def save_to(self, path: PathLike) -> Path:
        """Write this model as one package file (atomically); returns the path."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        normalization = None
        if self.normalization is not None:
            normalization = {k: v.detach().cpu() for k, v in self.normalization.items()}
        package = ModelPackage(self.config, state, self.tokens_text, self.bpe_model, normalization)
        return write_package(path, package)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: PathLike,
        tokens: PathLike,
        bpe_model: Optional[PathLike] = None,
        family: Optional[str] = None,
        map_location: Any = "cpu",
        decoding: Optional[Mapping[str, Any]] = None,
    ) -> "ASRModel":
        """A model from a checkpoint holding ``model`` and its params (export.py's
        pretrained.pt, or an epoch-N.pt) and a ``tokens.txt``; ``family`` defaults to the
        params' ``model_family`` (the Zipformer when absent, as in older checkpoints)."""
        from icefall_lite.checkpoint import CheckpointError

        data = read_checkpoint(checkpoint, map_location="cpu")
        params = stored_params(data)
        if "vocab_size" not in params or "model" not in data:
            raise CheckpointError(
                f"{checkpoint}: holds no model params; expected the pretrained.pt written by "
                "export.py"
            )
        tokens_path = Path(tokens)
        if not tokens_path.is_file():
            raise FileNotFoundError(f"--tokens {tokens}: no such file")
        bpe = None
        if bpe_model is not None and Path(bpe_model).is_file():
            bpe = Path(bpe_model).read_bytes()
        package = ModelPackage(
            config=make_config(
                family or params.get("model_family") or DEFAULT_FAMILY, params, decoding
            ),
            state_dict=data["model"],
            tokens=tokens_path.read_text(encoding="utf-8"),
            bpe_model=bpe,
        )
        try:
            return cls._from_package(package, checkpoint, map_location)
        except PackageError as error:
            raise CheckpointError(
                str(error).replace("model.pt", "its weights").replace("config.json's", "its")
                + "; export it again with export.py"
            ) from None

    @staticmethod
    def list_available_models(model_dirs: Optional[Sequence[PathLike]] = None) -> List[str]:
        """Names :meth:`from_pretrained` resolves: ``<name>.icefall`` files in the model
        folders (:func:`default_model_dirs`), sorted."""
        names = set()
        for folder in model_dirs if model_dirs is not None else default_model_dirs():
            folder = Path(folder)
            if folder.is_dir():
                names.update(
                    p.name[: -len(PACKAGE_SUFFIX)] for p in folder.glob(f"*{PACKAGE_SUFFIX}")
                )
        return sorted(names)

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: PathLike,
        map_location: Any = "cpu",
        model_dirs: Optional[Sequence[PathLike]] = None,
    ) -> "ASRModel":
        """A model by name or place, without any network access.

        ``name_or_dir`` is a package file; a folder holding exactly one ``*.icefall`` (or a
        ``model.icefall``); or a name, looked up as ``<name>.icefall`` in ``model_dirs``
        (default :func:`default_model_dirs`). An unknown name is an error listing what exists.
        """
        path = Path(name_or_dir)
        if path.is_file():
            return cls.restore_from(path, map_location)
        if path.is_dir():
            found = sorted(path.glob(f"*{PACKAGE_SUFFIX}"))
            if (path / f"model{PACKAGE_SUFFIX}").is_file():
                found = [path / f"model{PACKAGE_SUFFIX}"]
            if len(found) != 1:
                what = ", ".join(p.name for p in found) if found else "none"
                raise UsageError(
                    f"{path}: expected one *{PACKAGE_SUFFIX} model package in the folder "
                    f"(found {what}); name the file"
                )
            return cls.restore_from(found[0], map_location)
        dirs = [Path(d) for d in (model_dirs if model_dirs is not None else default_model_dirs())]
        for folder in dirs:
            candidate = folder / f"{name_or_dir}{PACKAGE_SUFFIX}"
            if candidate.is_file():
                return cls.restore_from(candidate, map_location)
        available = cls.list_available_models(dirs)
        raise UsageError(
            f"no model named {str(name_or_dir)!r} in {', '.join(str(d) for d in dirs)} (set "
            f"${MODELS_ENV} to add folders); available: {', '.join(available) or 'none'}"
        )

    # ------------------------------------------------------------------ decoding settings
    def default_decoding_method(self) -> str:
        method = self.config.get("decoding", {}).get("decoding_method")
        if method:
            return method
        return "greedy_search" if has_transducer(self.model) else "ctc_greedy_search"

    def lm_fusion(
        self,
        lm_path: PathLike,
        lm_scale: float = SEARCH_DEFAULTS["lm_scale"],
        word_insertion_bonus: float = SEARCH_DEFAULTS["word_insertion_bonus"],
        what: str = "lm_path",
    ) -> LmFusion:
        """The n-gram LM of the ARPA file ``lm_path`` with its fusion weights, as
        ``transcribe(lm_path=...)`` fuses it: read once per (file, scale, bonus) and kept on
        this model, its words checked against the package's tokens.

        Args:
          lm_path: ARPA file (plain or ``.gz``) over the model's BPE tokens.
          lm_scale: weight of the LM's log-probabilities in the search score.
          word_insertion_bonus: added for every word begun.
          what: how the caller names the file in messages (``--lm-path`` for a command line).
        Raises:
          UsageError: the file is missing or not ARPA, or its words are not the model's tokens
            (one line naming the file).
        """
        from icefall_lite.lm import load_token_lm_fusion

        key = (str(Path(lm_path).resolve()), float(lm_scale), float(word_insertion_bonus))
        if key not in self._lm_fusions:
            self._lm_fusions[key] = load_token_lm_fusion(
                lm_path, self.symbols, float(lm_scale), float(word_insertion_bonus), what
            )
        return self._lm_fusions[key]

    def _settings(self, decoding_method: Optional[str], options: Mapping[str, Any]) -> Dict:
        """The search and long-audio settings of one call, checked; ``settings["fusion"]`` is
        the LM to fuse (:meth:`lm_fusion`) or None."""
        unknown = set(options) - set(SEARCH_DEFAULTS) - set(LONG_AUDIO_DEFAULTS)
        if unknown:
            raise TypeError(
                f"transcribe(): unknown option(s) {', '.join(sorted(unknown))}; known: "
                f"{', '.join(sorted(set(SEARCH_DEFAULTS) | set(LONG_AUDIO_DEFAULTS)))}"
            )
        settings = dict(SEARCH_DEFAULTS, **LONG_AUDIO_DEFAULTS)
        settings.update({k: v for k, v in self.config.get("decoding", {}).items() if k in settings})
        settings.update(options)
        settings["decoding_method"] = decoding_method or self.default_decoding_method()
        method = settings["decoding_method"]
        if method not in DECODING_METHODS:
            raise UsageError(
                f"decoding_method {method!r}: expected one of {', '.join(DECODING_METHODS)}"
            )
        if method in CTC_METHODS and not has_ctc_head(self.model):
            raise UsageError(
                f"decoding_method {method}: this model has no CTC head; use "
                f"{' or '.join(TRANSDUCER_METHODS)}"
            )
        if method in TRANSDUCER_METHODS and not has_transducer(self.model):
            raise UsageError(
                f"decoding_method {method}: this model is CTC-only; use "
                f"{' or '.join(CTC_METHODS)}"
            )
        for key in ("beam_size", "max_contexts", "max_states", "max_sym_per_frame", "num_paths"):
            if int(settings[key]) < 1:
                raise UsageError(f"{key} must be >= 1, got {settings[key]}")
        if settings["long_audio"] not in LONG_AUDIO_MODES:
            raise UsageError(
                f"long_audio {settings['long_audio']!r}: expected one of "
                f"{', '.join(LONG_AUDIO_MODES)}"
            )
        if settings["long_audio"] == "streaming" and not self._can_stream(method):
            raise UsageError(
                f"long_audio='streaming' needs a causal model and one of "
                f"{', '.join(STREAMING_DECODING_METHODS)}"
            )
        if not 0 <= settings["overlap_seconds"] * 2 < settings["chunk_seconds"]:
            raise UsageError(
                f"overlap_seconds ({settings['overlap_seconds']}) must be >= 0 and less than "
                f"half of chunk_seconds ({settings['chunk_seconds']})"
            )
        if not isinstance(settings["full_context"], bool):
            raise UsageError(
                f"full_context must be True or False, got {settings['full_context']!r}"
            )
        settings["fusion"] = self._settings_fusion(settings)
        return settings

    def _settings_fusion(self, settings: Mapping[str, Any]) -> Optional[LmFusion]:
        """The LM that ``lm_path``, ``lm_scale`` and ``word_insertion_bonus`` name, checked as
        decode.py checks ``--lm-type ngram`` (None without ``lm_path``)."""
        for key in ("lm_scale", "word_insertion_bonus"):
            if not isinstance(settings[key], numbers.Real) or isinstance(settings[key], bool):
                raise UsageError(f"{key} must be a number, got {settings[key]!r}")
        if settings["lm_scale"] < 0:
            raise UsageError(f"lm_scale must be >= 0, got {settings['lm_scale']}")
        if settings["lm_path"] is None:
            return None
        method = settings["decoding_method"]
        if method not in LM_METHODS:
            raise UsageError(
                f"lm_path: n-gram LM fusion works with decoding_method "
                f"{' or '.join(LM_METHODS)}, not {method}"
            )
        return self.lm_fusion(
            settings["lm_path"], settings["lm_scale"], settings["word_insertion_bonus"]
        )

    @contextlib.contextmanager
    def _whole_input_encoding(self, settings: Mapping) -> Iterator[int]:
        """The chunk size encode_utterances takes for whole inputs and windows: the package's,
        or -1 with ``full_context``, in which case a chunk-causal encoder (the Zipformer's
        ``chunk_size`` and ``left_context_frames`` lists) also attends over the whole input
        while inside (the front end's padding alone leaves the attention masked to the
        package's chunks)."""
        encoder = getattr(self.model, "encoder", None)
        chunked = hasattr(encoder, "chunk_size") and hasattr(encoder, "left_context_frames")
        if not settings["full_context"]:
            yield self.chunk_size
            return
        if not (self.causal and chunked):
            yield -1
            return
        saved = (encoder.chunk_size, encoder.left_context_frames)
        encoder.chunk_size, encoder.left_context_frames = [-1], [-1]
        try:
            yield -1
        finally:
            encoder.chunk_size, encoder.left_context_frames = saved

    def _can_stream(self, method: str) -> bool:
        return self.causal and self.chunk_size > 0 and method in STREAMING_DECODING_METHODS

    # ------------------------------------------------------------------ decoding
    def _normalize(self, feats: Tensor) -> Tensor:
        if self.normalization is None:
            return feats
        mean = self.normalization["mean"].to(feats)
        std = self.normalization["std"].to(feats)
        return (feats - mean) / std

    @torch.no_grad()
    def _decode_features(
        self, features: List[Tensor], settings: Mapping, normalized: bool = False
    ) -> List[DecodingResult]:
        """Whole-utterance decoding of (T_i, F) fbank, as decode.py does it (``normalized``:
        the package's feature normalisation is already applied)."""
        results: List[Optional[DecodingResult]] = [None] * len(features)
        usable = [i for i, f in enumerate(features) if int(self.model.output_frames(f.size(0))) > 0]
        for i in set(range(len(features))) - set(usable):  # shorter than the front end's reach
            results[i] = DecodingResult(tokens=[], timestamps=[], score=0.0)
        if usable:
            device = self.device
            feats = [features[i].to(device) for i in usable]
            if not normalized:
                feats = [self._normalize(f) for f in feats]
            lens = torch.tensor([f.size(0) for f in feats], device=device)
            x = nn.utils.rnn.pad_sequence(feats, batch_first=True, padding_value=LOG_EPS)
            with self._whole_input_encoding(settings) as chunk_size:
                encoder_out, encoder_out_lens = encode_utterances(
                    self.model, x, lens, self.causal, chunk_size
                )
            decoded = search(
                settings, self.model, encoder_out, encoder_out_lens, fusion=settings["fusion"]
            )
            for i, result in zip(usable, decoded):
                results[i] = result
        return results  # type: ignore[return-value]

    def _feature_chunks(self, item: _Input) -> Iterator[Tensor]:
        for chunk in iter_fbank_chunks(item.blocks(10.0), SAMPLE_RATE):
            yield self._normalize(chunk)

    def _streaming_search(self, settings: Mapping) -> StreamingSearch:
        try:
            return StreamingSearch.from_settings(self.model, settings, settings["fusion"])
        except ValueError as error:  # an LM the streaming search cannot fuse: never ignored
            raise UsageError(f"lm_path with long audio: {error}") from None

    @torch.no_grad()
    def _decode_windows(self, windows: List[Tensor], settings: Mapping) -> List[DecodingResult]:
        """Windows of a long input (normalised fbank), encoded together; a streaming-capable
        transducer search runs over each with endpointing, any other search as decode.py's."""
        method = settings["decoding_method"]
        endpoint = int(round(settings["endpoint_seconds"] / self.frame_shift))
        if method not in STREAMING_DECODING_METHODS or endpoint <= 0:
            return self._decode_features(windows, settings, normalized=True)
        device = self.device
        lens = torch.tensor([w.size(0) for w in windows], device=device)
        x = nn.utils.rnn.pad_sequence(
            [w.to(device) for w in windows], batch_first=True, padding_value=LOG_EPS
        )
        with self._whole_input_encoding(settings) as chunk_size:
            encoder_out, encoder_out_lens = encode_utterances(
                self.model, x, lens, self.causal, chunk_size
            )
        results = []
        for i, n in enumerate(encoder_out_lens.tolist()):
            segmenting = SegmentingSearch(self._streaming_search(settings), endpoint)
            segmenting.decode(encoder_out[i, :n])
            results.append(segmenting.result())
        return results

    def _decode_long(self, item: _Input, settings: Mapping, batch_size: int) -> DecodingResult:
        method = settings["decoding_method"]
        mode = settings["long_audio"]
        endpoint = int(round(settings["endpoint_seconds"] / self.frame_shift))
        if mode == "streaming" or (mode == "auto" and self._can_stream(method)):
            if self._streaming_encoder is None:
                self._streaming_encoder = self.model.streaming_encoder(
                    self.chunk_size, self.left_context_frames
                )
            # A fast-beam lattice grows with the segment: end one after 60 s at the latest.
            max_segment = int(60.0 / self.frame_shift) if method == "fast_beam_search" else 0
            return stream_features(
                self._streaming_encoder,
                self._streaming_search(settings),
                self._feature_chunks(item),
                self.device,
                endpoint_frames=endpoint,
                max_segment_frames=max_segment,
            )
        sub = self.subsampling
        window = max(sub, int(round(settings["chunk_seconds"] * 100 / sub)) * sub)
        overlap = int(round(settings["overlap_seconds"] * 100 / sub)) * sub
        windows = iter_windows(self._feature_chunks(item), window, window - overlap)
        return decode_windows(
            windows,
            lambda feats: self._decode_windows(feats, settings),
            self.model.output_frames,
            sub,
            batch_size,
        )

    def _finish(
        self, result: DecodingResult, hypotheses: bool, seconds: float
    ) -> Union[str, Hypothesis]:
        hyp = make_hypothesis(result, self.symbols, self.frame_shift, duration=seconds)
        return hyp if hypotheses else hyp.text

    def _results(
        self, audio: Any, batch_size: int, sample_rate: int, errors: str, settings: Mapping
    ) -> Iterator[tuple]:
        """(input, DecodingResult or None, seconds) per input, in order."""
        batch: List[tuple] = []  # (input, fbank or None)

        def flush() -> Iterator[tuple]:
            # Decode the group in batches of similar lengths (less padding), yield in order.
            present = sorted(
                (i for i, (_, f) in enumerate(batch) if f is not None),
                key=lambda i: batch[i][1].size(0),
            )
            results: Dict[int, DecodingResult] = {}
            for start in range(0, len(present), batch_size):
                rows = present[start : start + batch_size]
                decoded = self._decode_features([batch[i][1] for i in rows], settings)
                results.update(zip(rows, decoded))
            for i, (item, f) in enumerate(batch):
                if f is None:
                    yield item, None, 0.0
                else:
                    yield item, results[i], f.size(0) * 0.01
            batch.clear()

        def failed(item: _Input, error: AudioReadError) -> None:
            if errors == "raise":
                raise error
            logging.error(str(error))

        for item in _expand(audio, sample_rate):
            try:
                seconds = item.seconds()
                long = seconds > settings["long_audio_seconds"]
                wave = None if long else item.waveform()
            except AudioReadError as error:
                failed(item, error)
                batch.append((item, None))
                continue
            if long:
                yield from flush()
                try:
                    result = self._decode_long(item, settings, batch_size)
                except AudioReadError as error:
                    failed(item, error)
                    result = None
                yield item, result, seconds
                continue
            batch.append((item, compute_fbank([wave], SAMPLE_RATE)[0]))
            if len(batch) >= batch_size * GROUP_BATCHES:
                yield from flush()
        yield from flush()

    def _check_call(self, batch_size: int, errors: str, sample_rate: int) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if errors not in ("raise", "skip"):
            raise UsageError(f"errors must be 'raise' or 'skip', got {errors!r}")
        if sample_rate <= 0:
            raise UsageError(f"sample_rate must be positive, got {sample_rate}")

    def transcribe_generator(
        self,
        audio: Any,
        batch_size: int = 8,
        return_hypotheses: bool = False,
        timestamps: bool = False,
        decoding_method: Optional[str] = None,
        sample_rate: int = SAMPLE_RATE,
        errors: str = "raise",
        **options: Any,
    ) -> Iterator[Optional[Union[str, Hypothesis]]]:
        """Like :meth:`transcribe`, yielding one result per input in input order; only one
        batch (or one long input's window) is in memory at a time, and a list or manifest is
        read as it goes.

        ``errors="skip"``: an unreadable input is logged (naming it) and yields None.
        """
        self._check_call(batch_size, errors, sample_rate)
        settings = self._settings(decoding_method, options)
        hypotheses = return_hypotheses or timestamps
        for _, result, seconds in self._results(audio, batch_size, sample_rate, errors, settings):
            yield None if result is None else self._finish(result, hypotheses, seconds)

    def transcribe(
        self,
        audio: Any,
        batch_size: int = 8,
        return_hypotheses: bool = False,
        timestamps: bool = False,
        decoding_method: Optional[str] = None,
        sample_rate: int = SAMPLE_RATE,
        errors: str = "raise",
        **options: Any,
    ) -> List[Optional[Union[str, Hypothesis]]]:
        """Transcribe ``audio`` (see the module docstring for what it may be).

        A NeMo JSON manifest is passed as NeMo's ``transcribe()`` takes one: its path, ending
        in ``.json`` or ``.jsonl`` (alone or in a list). Each usable line is one input, the
        segment its ``offset``/``duration`` select (seconds; relative ``audio_filepath``
        resolved against the manifest's folder); a bad line is logged with its line number
        and skipped. :meth:`transcribe_manifest` also writes NeMo's output manifest.

        Args:
          batch_size: inputs decoded together (long inputs: windows decoded together).
          return_hypotheses: return :class:`~icefall_lite.api.hypothesis.Hypothesis` objects
            (text, tokens, token start times, words with start/end times, score).
          timestamps: the same as ``return_hypotheses`` (the times are always there).
          decoding_method: a search (default: the package's, else greedy_search for a
            transducer and ctc_greedy_search for a CTC-only model).
          sample_rate: the rate of array inputs (files carry their own).
          errors: ``"raise"`` (default) or ``"skip"`` (None for an unreadable input).
          options: search settings (``beam_size``, ``max_sym_per_frame``, ``beam``,
            ``max_states``, ``max_contexts``, ``num_paths``, ``nbest_scale``), n-gram LM
            shallow fusion (``lm_path``: an ARPA file over the package's tokens, None for no
            LM, default; ``lm_scale``, default 0.3; ``word_insertion_bonus``, default 0.0;
            decode.py's ``--lm-type ngram`` flags, for ``ctc_prefix_beam_search`` and
            ``modified_beam_search``, in every path: batched files, long-audio windows and
            streaming, where an endpoint restarts the LM's history with the search's; the
            LM is read once and kept, see :meth:`lm_fusion`) and long-audio
            settings (``long_audio`` = auto/streaming/chunked, ``long_audio_seconds``,
            ``chunk_seconds``, ``overlap_seconds``, ``endpoint_seconds``); ``full_context``
            (default False): a causal model decodes files and long-audio windows with full
            context instead of its streaming chunks (decode.py ``--chunk-size -1``).
        Returns:
          one text (or Hypothesis) per input, in input order; silence gives ``""``.
        Raises:
          AudioReadError: an input is missing, empty, not audio or has no samples (the
            message names it); UsageError: bad settings (among them ``lm_path`` with a method
            that cannot fuse an LM, ``lm_scale`` < 0, a missing or malformed ARPA file or one
            over other tokens).
        """
        return list(
            self.transcribe_generator(
                audio,
                batch_size=batch_size,
                return_hypotheses=return_hypotheses,
                timestamps=timestamps,
                decoding_method=decoding_method,
                sample_rate=sample_rate,
                errors=errors,
                **options,
            )
        )

    def transcribe_manifest(
        self,
        manifest: PathLike,
        output: Optional[PathLike] = None,
        batch_size: int = 8,
        decoding_method: Optional[str] = None,
        **options: Any,
    ) -> Path:
        """Transcribe a NeMo JSON manifest and write NeMo's output manifest: each usable input
        line (audio path absolute, ``offset`` and other keys kept) with ``pred_text``, as
        ``decode.py --nemo-manifest`` writes it (:func:`~icefall_lite.data.nemo.
        write_nemo_predictions`); default ``<manifest stem>_pred.json`` beside it, written
        atomically. Bad lines are logged with their line number and left out, an unreadable
        audio file too. ``decoding_method`` and ``options`` (``lm_path``, ...) as for
        :meth:`transcribe`. Returns the output's path."""
        from icefall_lite.data.nemo import write_nemo_predictions

        manifest = Path(manifest)
        if not manifest.is_file():
            raise UsageError(f"{manifest}: no such manifest")
        output = Path(output) if output else manifest.with_name(f"{manifest.stem}_pred.json")
        settings = self._settings(decoding_method, options)
        pairs = self._results(manifest, batch_size, SAMPLE_RATE, "skip", settings)
        lines = (
            (item.line, self._finish(result, False, seconds))
            for item, result, seconds in pairs
            if result is not None
        )
        write_nemo_predictions(lines, output)
        return output

    def __repr__(self) -> str:
        return (
            f"ASRModel(family={self.model_family}, vocab_size={len(self.symbols)}, "
            f"causal={self.causal}, device={self.device})"
        )
