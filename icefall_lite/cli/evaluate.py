"""Decoding test sets and writing icefall's result files: what decode.py and
streaming_decode.py share once the model is loaded.

Output files (icefall's names, in ``<exp-dir>/<decoding-method>/``)::

    recogs-<test-set>-<suffix>.txt       reference and hypothesis per cut
    errs-<test-set>-<suffix>.txt         write_error_stats report
    wer-summary-<test-set>-<suffix>.txt  "settings<TAB>WER"
    log-decode-<suffix>-<date>           the log

where ``<suffix>`` is :func:`decoding_suffix`, e.g.
``epoch-30_avg-9__modified_beam_search__beam-size-4_use-averaged-model``.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from lhotse import CutSet
from torch import nn

from icefall_lite.data import cuts_filename
from icefall_lite.data.nemo import nemo_line, write_nemo_predictions
from icefall_lite.errors import UsageError
from icefall_lite.scoring import store_transcripts, write_error_stats, write_wer_summary
from icefall_lite.search.decoding import search
from icefall_lite.search.hypothesis import DecodingResult
from icefall_lite.search.lm_fusion import LmFusion
from icefall_lite.search.transducer_common import model_device
from icefall_lite.streaming.stream import TAIL_PADDING_FRAMES, encode_utterances, pad_to_chunks

# Seconds per fbank frame, for the audio duration when batches carry no cuts.
FRAME_SHIFT = 0.01

# (cut_id, reference words, hypothesis words)
ResultTriple = Tuple[str, List[str], List[str]]


def decoding_suffix(params: Mapping[str, Any]) -> str:
    """icefall's file-name suffix naming the checkpoints and search settings."""
    if params.get("iter", 0) > 0:
        suffix = f"iter-{params['iter']}_avg-{params['avg']}"
    else:
        suffix = f"epoch-{params['epoch']}_avg-{params['avg']}"
    if params.get("causal"):
        # A causal encoder decodes with the first entry of its chunk/left-context lists.
        chunk = str(params["chunk_size"]).split(",")[0]
        left_context = str(params["left_context_frames"]).split(",")[0]
        suffix += f"_chunk-{chunk}_left-context-{left_context}"
    if params.get("buffered_chunk"):
        # Buffered streaming of a non-causal model (icefall_lite/streaming/buffered.py).
        suffix += (
            f"_chunk-{params['buffered_chunk']}_left-{params['buffered_left']}"
            f"_right-{params['buffered_right']}"
        )
    method = params["decoding_method"]
    if "fast_beam_search" in method:
        suffix += f"_beam-{params['beam']}_max-contexts-{params['max_contexts']}"
        suffix += f"_max-states-{params['max_states']}"
        if "nbest" in method:
            suffix += f"_nbest-scale-{params['nbest_scale']}_num-paths-{params['num_paths']}"
    elif "beam_search" in method:
        suffix += f"__{method}__beam-size-{params['beam_size']}"
        suffix += lm_suffix(params)
    elif method == "greedy_search":
        suffix += f"_context-{params.get('context_size', 1)}"
        suffix += f"_max-sym-per-frame-{params['max_sym_per_frame']}"
    else:
        suffix += f"__{method}"
    if params.get("use_averaged_model") and not params.get("use_ema"):
        suffix += "_use-averaged-model"
    if params.get("use_ema"):
        suffix += "_use-ema"
    if (
        params.get("model_family") == "lstm_transducer"
        and int(str(params.get("chunk_size", -1)).split(",")[0]) > 0
        and not params.get("causal")
    ):
        suffix += f"_chunk-{str(params['chunk_size']).split(',')[0]}"
    if params.get("stream_norm"):
        suffix += f"_stream-norm-alpha-{params['stream_norm_alpha']}"
        suffix += "-reset" if params.get("reset_stream_stats") else "-carry"
    return suffix


def result_key(params: Mapping[str, Any]) -> str:
    """The settings label in errs-* and wer-summary-* (icefall's keys)."""
    method = params["decoding_method"]
    if method == "greedy_search":
        return "greedy_search"
    if method == "fast_beam_search":
        return (
            f"beam_{params['beam']}_max_contexts_{params['max_contexts']}"
            f"_max_states_{params['max_states']}"
        )
    if method == "fast_beam_search_nbest":
        return (
            f"beam_{params['beam']}_max_contexts_{params['max_contexts']}"
            f"_max_states_{params['max_states']}_num_paths_{params['num_paths']}"
            f"_nbest_scale_{params['nbest_scale']}"
        )
    if method in ("beam_search", "modified_beam_search", "ctc_prefix_beam_search"):
        return f"beam_size_{params['beam_size']}" + lm_suffix(params).replace("-", "_")
    return method


def lm_suffix(params: Mapping[str, Any]) -> str:
    """``_lm-ngram-scale-0.3-wib-0.5`` when a language model is fused, else empty."""
    if params.get("lm_type", "none") == "none":
        return ""
    suffix = f"_lm-{params['lm_type']}-scale-{params['lm_scale']}"
    if params.get("word_insertion_bonus", 0.0):
        suffix += f"-wib-{params['word_insertion_bonus']}"
    return suffix


@torch.no_grad()
def decode_one_batch(
    params: Mapping[str, Any],
    model: nn.Module,
    batch: Mapping[str, Any],
    fusion: Optional[LmFusion] = None,
) -> List[DecodingResult]:
    """Encode a lhotse batch (``inputs`` (N, T, 80), ``supervisions.num_frames`` (N,)) and
    search (with ``fusion``: shallow fusion of a language model); results follow the batch
    order."""
    return search(params, model, *encode_batch(params, model, batch), fusion=fusion)


@torch.no_grad()
def encode_batch(
    params: Mapping[str, Any], model: nn.Module, batch: Mapping[str, Any]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Encoder output (N, T', C) and lengths (N,) of a lhotse batch, as the searches see it
    (simulated streaming or full context, per ``chunk_size`` and the model's ``causal``)."""
    device = model_device(model)
    features = batch["inputs"].to(device)
    feature_lens = batch["supervisions"]["num_frames"].to(device)
    chunk_size = int(str(params.get("chunk_size", -1)).split(",")[0])
    feature_norm = params.get("feature_norm")
    if feature_norm is not None:
        # The driver normalises (streaming normalisation, or over each whole utterance) as the
        # chunk-wise decoder does; with a chunk size, padded to whole chunks as it pads.
        rows = [feature_norm.whole(features[i, :n]) for i, n in enumerate(feature_lens.tolist())]
        features = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=0.0)
        if chunk_size > 0:
            encoder = model.streaming_encoder(chunk_size)
            features, feature_lens = pad_to_chunks(
                features,
                feature_lens,
                encoder.decode_chunk_len,
                encoder.pad_length,
                getattr(encoder, "tail_padding_frames", TAIL_PADDING_FRAMES),
                pad_value=feature_norm.pad_value,
            )
        return model.forward_encoder(features, feature_lens, normalize=False)
    # Simulated streaming pads and masks exactly as chunk-wise streaming_decode.py does
    # (test/recipes/test_streaming_decode_synth.py); see encode_utterances.
    return encode_utterances(model, features, feature_lens, bool(params.get("causal")), chunk_size)


def load_test_cuts(data_module: Any, prefix: str, split: str) -> CutSet:
    """A test set's cuts (lazily read), checked first in one pass, so a bad entry is a one-line
    UsageError naming the file and the cut instead of an error deep inside the sampler or the
    search.

    Checked: the file is a cut manifest (JSON lines); every cut has a supervision (its
    transcript); every cut has features, or, when the audio is read (``--on-the-fly-feats 1``
    or ``--input-strategy`` OnTheFlyFeatures/AudioSamples), a recording whose files exist.

    Args:
      data_module: an :class:`~icefall_lite.data.AsrDataModule` (its ``args`` are the flags).
      prefix, split: the file is ``<manifest-dir>/<prefix>_cuts_<split>.jsonl.gz``.
    """
    args = data_module.args
    filename = cuts_filename(args.manifest_dir, prefix, split)
    cuts = data_module.load_cuts(prefix, split)
    try:
        cuts = cuts.to_eager()
    except Exception as error:  # json, gzip or lhotse's own errors: all say "unreadable file"
        reason = " ".join(str(error).split())[:200]
        raise UsageError(
            f"{filename}: not a readable cut manifest (JSON lines, gzip-compressed when named "
            f".gz; made by prepare.sh's fbank stage): {type(error).__name__}: {reason}"
        ) from None
    needs_audio = bool(getattr(args, "on_the_fly_feats", False)) or getattr(
        args, "input_strategy", "PrecomputedFeatures"
    ) in ("OnTheFlyFeatures", "AudioSamples")
    for cut in cuts:
        if not cut.supervisions:
            raise UsageError(
                f"{filename}: cut {cut.id} has no supervision (no transcript); every test cut "
                "needs one: add it or remove the cut"
            )
        if needs_audio:
            if not cut.has_recording:
                raise UsageError(
                    f"{filename}: cut {cut.id} has no recording, which --on-the-fly-feats 1 reads"
                )
            for source in cut.recording.sources:
                if source.type == "file" and not Path(source.source).is_file():
                    raise UsageError(
                        f"{filename}: cut {cut.id}: recording file {source.source} does not "
                        "exist (--on-the-fly-feats 1 reads the audio); restore it or decode the "
                        "precomputed features (--on-the-fly-feats 0)"
                    )
        elif not cut.has_features:
            raise UsageError(
                f"{filename}: cut {cut.id} has no features; run prepare.sh's fbank stage or "
                "decode with --on-the-fly-feats 1"
            )
        elif not Path(cut.features.storage_path).exists():
            raise UsageError(
                f"{filename}: cut {cut.id}: feature file {cut.features.storage_path} does not "
                "exist; run prepare.sh's fbank stage again or decode with --on-the-fly-feats 1"
            )
    # The checked file, opened lazily again (what lhotse's bucketing sampler expects).
    return data_module.load_cuts(prefix, split)


@dataclass
class DecodeStats:
    """Counts of one decoded test set; ``rtf`` = decode seconds / audio seconds."""

    num_cuts: int = 0
    audio_seconds: float = 0.0
    decode_seconds: float = 0.0

    @property
    def rtf(self) -> float:
        return self.decode_seconds / self.audio_seconds if self.audio_seconds else float("nan")


def _batch_cut_info(batch: Mapping[str, Any], first_index: int) -> Tuple[List[str], float]:
    """Cut ids and total audio seconds of a batch (synthetic ids when it carries no cuts)."""
    supervisions = batch["supervisions"]
    cuts = supervisions.get("cut")
    if cuts is not None:
        return [cut.id for cut in cuts], float(sum(cut.duration for cut in cuts))
    num = len(supervisions["text"])
    seconds = float(supervisions["num_frames"].sum()) * FRAME_SHIFT
    return [f"utt-{first_index + i}" for i in range(num)], seconds


def decode_dataset(
    dl: Iterable[Mapping[str, Any]],
    params: Mapping[str, Any],
    model: nn.Module,
    tokens_to_words: Callable[[List[int]], List[str]],
    test_set_name: str = "",
    total_cuts: Optional[int] = None,
    log_interval: int = 20,
    fusion: Optional[LmFusion] = None,
) -> Tuple[List[ResultTriple], DecodeStats]:
    """Decode every batch of ``dl``.

    Args:
      fusion: a language model fused into the search (``--lm-type ngram``).
      tokens_to_words: token ids -> words (e.g. ``lambda ids: sp.decode(ids).split()``).
      total_cuts: number of cuts in the set, for the progress percentage (optional).
      log_interval: log progress every this many batches.
    Returns:
      ``(cut_id, ref_words, hyp_words)`` per cut in decoding order, and timing counts (decode
      time covers the encoder and the search, not data loading).
    """
    results: List[ResultTriple] = []
    stats = DecodeStats()
    for batch_idx, batch in enumerate(dl):
        cut_ids, seconds = _batch_cut_info(batch, stats.num_cuts)
        start = time.perf_counter()
        hyps = decode_one_batch(params, model, batch, fusion)
        stats.decode_seconds += time.perf_counter() - start
        stats.audio_seconds += seconds
        stats.num_cuts += len(cut_ids)
        for cut_id, ref_text, hyp in zip(cut_ids, batch["supervisions"]["text"], hyps):
            results.append((cut_id, ref_text.split(), tokens_to_words(hyp.tokens)))
        if batch_idx % log_interval == 0:
            done = f"{stats.num_cuts}" + (f"/{total_cuts}" if total_cuts else "")
            logging.info(
                f"{test_set_name} batch {batch_idx}: {done} cuts decoded, "
                f"RTF so far {stats.rtf:.4f}"
            )
    return results, stats


def save_results(
    params: Mapping[str, Any], test_set_name: str, results: Sequence[ResultTriple]
) -> Optional[float]:
    """Write recogs-*, and unless ``--skip-scoring`` errs-* and wer-summary-*, into
    ``params["res_dir"]``. Returns the WER in percent (None when scoring is skipped)."""
    res_dir = Path(params["res_dir"])
    suffix = params["suffix"]
    recogs = res_dir / f"recogs-{test_set_name}-{suffix}.txt"
    store_transcripts(recogs, results)
    logging.info(f"The transcripts are stored in {recogs}")
    if params.get("skip_scoring"):
        return None
    if not any(len(ref) for _, ref, _ in results):
        # A WER over no reference words is no score (it used to print 0.00 or inf).
        raise UsageError(
            f"test set '{test_set_name}': {len(results)} cut(s) and no reference words; "
            f"check its cut manifest (are the supervisions' texts there?)"
        )
    key = result_key(params)
    errs = res_dir / f"errs-{test_set_name}-{suffix}.txt"
    wer = write_error_stats(errs, f"{test_set_name}-{key}", results, enable_log=True)
    logging.info(f"Wrote detailed error stats to {errs}")
    write_wer_summary(res_dir / f"wer-summary-{test_set_name}-{suffix}.txt", {key: wer})
    return wer


def save_nemo_predictions(
    params: Mapping[str, Any],
    test_set_name: str,
    cuts: Iterable[Any],
    results: Sequence[ResultTriple],
) -> Path:
    """Write ``<res-dir>/nemo-<test-set>-<suffix>.json``: the input manifest's lines (audio
    paths absolute) in input order, each with ``pred_text``, as NeMo's transcription scripts
    write them."""
    hyps = {cut_id: " ".join(hyp) for cut_id, _, hyp in results}
    path = Path(params["res_dir"]) / f"nemo-{test_set_name}-{params['suffix']}.json"
    write_nemo_predictions(((nemo_line(cut), hyps[cut.id]) for cut in cuts if cut.id in hyps), path)
    logging.info(f"The NeMo manifest with pred_text is in {path}")
    return path


def decode_test_sets(
    params: Mapping[str, Any],
    model: nn.Module,
    tokens_to_words: Callable[[List[int]], List[str]],
    test_sets: Mapping[str, Iterable[Mapping[str, Any]]],
    total_cuts: Optional[Mapping[str, int]] = None,
    nemo_inputs: Optional[Mapping[str, Iterable[Any]]] = None,
    fusion: Optional[LmFusion] = None,
) -> Dict[str, Tuple[Optional[float], DecodeStats]]:
    """Decode and save each test set, then log a table of WER and decode RTF per set.

    Args:
      fusion: a language model fused into the search (``--lm-type ngram``).
      test_sets: name -> dataloader, decoded in order.
      nemo_inputs: name -> the cuts of a test set read from a NeMo manifest; its results are
        also written as a NeMo manifest with ``pred_text`` (:func:`save_nemo_predictions`).
    Returns:
      name -> (WER % or None, stats).
    """
    summary = {}
    for name, dl in test_sets.items():
        results, stats = decode_dataset(
            dl,
            params,
            model,
            tokens_to_words,
            test_set_name=name,
            total_cuts=(total_cuts or {}).get(name),
            fusion=fusion,
        )
        if stats.num_cuts == 0:
            raise UsageError(
                f"test set '{name}' has no cuts: nothing to score; check its cut manifest or "
                f"leave it out of --test-sets"
            )
        wer = save_results(params, name, results)
        if nemo_inputs and name in nemo_inputs:
            save_nemo_predictions(params, name, nemo_inputs[name], results)
        summary[name] = (wer, stats)
    lines = [f"{'test set':<16}{'WER %':>8}{'cuts':>8}{'audio s':>10}{'decode s':>10}{'RTF':>9}"]
    for name, (wer, stats) in summary.items():
        wer_text = "-" if wer is None else f"{wer:.2f}"
        lines.append(
            f"{name:<16}{wer_text:>8}{stats.num_cuts:>8}{stats.audio_seconds:>10.1f}"
            f"{stats.decode_seconds:>10.1f}{stats.rtf:>9.4f}"
        )
    logging.info(
        f"{params['decoding_method']} ({result_key(params)}), "
        f"{torch.get_num_threads()} thread(s):\n" + "\n".join(lines)
    )
    return summary
