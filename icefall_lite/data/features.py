"""80-dim log-mel fbank features: kaldifeat when it is installed, lhotse's own Fbank otherwise.

Both compute Kaldi-compatible fbank (25 ms window, 10 ms shift, 80 bins); kaldifeat is a C++
implementation and faster. kaldifeat is imported lazily here and nowhere else.
"""

import logging
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter
from lhotse.features.base import FeatureExtractor

__all__ = [
    "NUM_MEL_BINS",
    "kaldifeat_available",
    "make_fbank_extractor",
    "compute_fbank_for_cuts",
    "speed_perturb",
    "manifests_to_fbank",
    "noise_recordings_to_fbank",
    "fbank_backend_name",
]

NUM_MEL_BINS = 80
PathLike = Union[str, Path]


def kaldifeat_available() -> bool:
    """True when ``import kaldifeat`` works (it is an optional compiled package)."""
    try:
        import kaldifeat  # noqa: F401
    except Exception:  # ImportError, or a broken build raising OSError on load
        return False
    return True


def make_fbank_extractor(backend: str = "auto", device: str = "cpu") -> FeatureExtractor:
    """An 80-bin fbank extractor for lhotse.

    Args:
      backend: ``"kaldifeat"``, ``"lhotse"`` or ``"auto"`` (kaldifeat when importable).
      device: where kaldifeat computes (``"cuda"`` works when available); lhotse's Fbank is CPU.
    """
    if backend not in ("auto", "kaldifeat", "lhotse"):
        raise ValueError(f"fbank backend must be auto, kaldifeat or lhotse, got {backend!r}")
    use_kaldifeat = backend == "kaldifeat" or (backend == "auto" and kaldifeat_available())
    if use_kaldifeat:
        if not kaldifeat_available():
            raise ImportError("fbank backend 'kaldifeat' requested but kaldifeat is not installed")
        from lhotse import KaldifeatFbank, KaldifeatFbankConfig

        return KaldifeatFbank(KaldifeatFbankConfig(device=device))  # 80 mel bins by default
    return Fbank(FbankConfig(num_mel_bins=NUM_MEL_BINS))


def speed_perturb(cuts: CutSet, factors: Sequence[float] = (0.9, 1.1)) -> CutSet:
    """``cuts`` plus a copy per factor, resampled on the fly (ids get a ``_sp<f>`` suffix)."""
    perturbed = cuts
    for factor in factors:
        perturbed = perturbed + cuts.perturb_speed(factor)
    return perturbed


def compute_fbank_for_cuts(
    cuts: CutSet,
    storage_path: PathLike,
    output_cuts: PathLike,
    num_jobs: int = 1,
    backend: str = "auto",
    batch_duration: float = 600.0,
) -> CutSet:
    """Compute fbank for every cut, store it with LilcomChunkyWriter, write the cut manifest.

    Args:
      cuts: cuts with recordings (audio read through lhotse).
      storage_path: features archive base path, e.g. ``data/fbank/synth_feats_train``.
      output_cuts: where the cuts with features go, e.g. ``data/fbank/synth_cuts_train.jsonl.gz``;
        written to a temp file in the same folder and then renamed, so a crash leaves no
        half-written manifest that the next run would take as done.
      num_jobs: processes for lhotse's Fbank; kaldifeat runs batched in this process instead.
      backend: see :func:`make_fbank_extractor`.
      batch_duration: seconds of audio per kaldifeat batch.
    Returns:
      the eager CutSet with features.
    """
    output_cuts = Path(output_cuts)
    output_cuts.parent.mkdir(parents=True, exist_ok=True)
    cuts = cuts.to_eager()  # the parallel path splits the set, which needs its length
    device = "cuda" if torch.cuda.is_available() else "cpu"
    extractor = make_fbank_extractor(backend, device=device)
    logging.info(f"fbank with {type(extractor).__name__} on {device}, {num_jobs} job(s)")
    # Batched kaldifeat pays off on a GPU; on CPU (measured: tools/bench/fbank.py) it is slower
    # than one utterance at a time, so CPU takes the per-cut path below for both backends.
    if type(extractor).__name__ == "KaldifeatFbank" and device == "cuda":
        with_feats = cuts.compute_and_store_features_batch(
            extractor=extractor,
            storage_path=str(storage_path),
            batch_duration=batch_duration,
            num_workers=min(num_jobs, 2),
            storage_type=LilcomChunkyWriter,
            overwrite=True,
        )
    else:
        # Per-cut extraction: one thread per job avoids
        # oversubscription. Forked workers start in milliseconds; lhotse's default (spawned
        # workers re-importing torch) costs seconds per split, which dominates small splits.
        torch.set_num_threads(1)
        executor = None
        if num_jobs > 1:
            from concurrent.futures import ProcessPoolExecutor
            from multiprocessing import get_context

            executor = ProcessPoolExecutor(num_jobs, mp_context=get_context("fork"))
        try:
            with_feats = cuts.compute_and_store_features(
                extractor=extractor,
                storage_path=str(storage_path),
                executor=executor,
                storage_type=LilcomChunkyWriter,
            )
        finally:
            if executor is not None:
                executor.shutdown()
    with_feats = CutSet.from_cuts(with_feats).to_eager()
    tmp = output_cuts.with_name(".tmp." + output_cuts.name)
    with_feats.to_file(tmp)
    os.replace(tmp, output_cuts)
    return with_feats


def fbank_backend_name(backend: str = "auto") -> Optional[str]:
    """The backend ``make_fbank_extractor(backend)`` would pick: ``kaldifeat`` or ``lhotse``."""
    if backend == "auto":
        return "kaldifeat" if kaldifeat_available() else "lhotse"
    return backend


def manifests_to_fbank(
    manifest_dir: PathLike,
    fbank_dir: PathLike,
    prefix: str,
    split: str,
    perturb_speed: bool = False,
    num_jobs: int = 1,
    backend: str = "auto",
) -> Path:
    """Recordings + supervisions manifests of one split -> cuts with fbank.

    Reads ``<manifest_dir>/<prefix>_{recordings,supervisions}_<split>.jsonl.gz`` (lhotse's
    naming, also what ``lhotse prepare librispeech`` writes), validates them, optionally adds the
    0.9/1.1 speed-perturbed copies, and writes ``<fbank_dir>/<prefix>_cuts_<split>.jsonl.gz`` with
    features in ``<fbank_dir>/<prefix>_feats_<split>``. An existing output is kept (logged).

    Returns:
      the cut manifest's path.
    """
    from lhotse import (
        RecordingSet,
        SupervisionSet,
        fix_manifests,
        validate_recordings_and_supervisions,
    )

    manifest_dir, fbank_dir = Path(manifest_dir), Path(fbank_dir)
    output = fbank_dir / f"{prefix}_cuts_{split}.jsonl.gz"
    if output.is_file():
        logging.info(f"{output} exists, skipping")
        return output
    paths = {
        kind: manifest_dir / f"{prefix}_{kind}_{split}.jsonl.gz"
        for kind in ("recordings", "supervisions")
    }
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: it is made by prepare.sh's manifest stage")
    recordings = RecordingSet.from_file(paths["recordings"])
    supervisions = SupervisionSet.from_file(paths["supervisions"])
    recordings, supervisions = fix_manifests(recordings, supervisions)
    validate_recordings_and_supervisions(recordings, supervisions)
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    # Cuts must span exactly their supervision (LibriSpeech recordings are one utterance each).
    cuts = cuts.trim_to_supervisions(keep_overlapping=False)
    if perturb_speed:
        logging.info(f"{prefix} {split}: adding speed perturbation 0.9 and 1.1")
        cuts = speed_perturb(cuts)
    compute_fbank_for_cuts(
        cuts,
        storage_path=fbank_dir / f"{prefix}_feats_{split}",
        output_cuts=output,
        num_jobs=num_jobs,
        backend=backend,
    )
    return output


def noise_recordings_to_fbank(
    recordings,
    output_cuts: PathLike,
    window: float = 10.0,
    min_duration: float = 5.0,
    num_jobs: int = 1,
    backend: str = "auto",
) -> Path:
    """Noise/music recordings -> ``window``-second cuts with fbank, the CutSet for CutMix.

    Pieces shorter than ``min_duration`` seconds (recording tails) are dropped, as icefall does
    for MUSAN. Features go next to ``output_cuts`` (``<name>_feats``).
    """
    output_cuts = Path(output_cuts)
    windows = CutSet.from_manifests(recordings=recordings).cut_into_windows(window)
    cuts = CutSet.from_cuts(cut for cut in windows if cut.duration > min_duration)
    storage = output_cuts.parent / output_cuts.name.split(".")[0].replace("cuts", "feats")
    compute_fbank_for_cuts(cuts, storage, output_cuts, num_jobs=num_jobs, backend=backend)
    return output_cuts
