"""The data module every recipe shares: icefall's flags, lhotse samplers and datasets.

Batches are lhotse ``K2SpeechRecognitionDataset`` batches::

    batch["inputs"]                      (N, T, 80) float fbank
    batch["supervisions"]["text"]        list[str]
    batch["supervisions"]["num_frames"]  (N,) valid frames per utterance
    batch["supervisions"]["cut"]         list of cuts (with --return-cuts true)

Resuming mid-epoch: the training loop saves ``train_dl.sampler.state_dict()`` in its checkpoint
and passes it back as ``train_dataloaders(cuts, sampler_state_dict=...)``. The state records the
batches the loop actually received (not the ones the DataLoader prefetched), so the resumed run
continues at exactly the next batch.

NeMo tarred audio (``--nemo-tarred-manifest`` with ``--nemo-tarred-audio``) replaces the training
splits' cuts with the tar shards streamed in order (:mod:`icefall_lite.data.nemo_tarred`); their
features are computed on the fly. The same exact resume holds: fast-forwarding re-reads the
stream up to the resume point.
"""

import argparse
import inspect
import itertools
import logging
import os
import random
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import (
    CutConcatenate,
    CutMix,
    DynamicBucketingSampler,
    K2SpeechRecognitionDataset,
    PrecomputedFeatures,
    SimpleCutSampler,
    SpecAugment,
)
from lhotse.dataset.dataloading import LHOTSE_PROCESS_SEED
from lhotse.dataset.input_strategies import AudioSamples, OnTheFlyFeatures  # noqa: F401
from lhotse.dataset.signal_transforms import mask_along_axis_optimized, time_warp
from torch.utils.data import DataLoader

from icefall_lite.data.cuts import load_cut_file, load_cuts
from icefall_lite.data.features import make_fbank_extractor
from icefall_lite.data.masks import SpecMasks
from icefall_lite.data.nemo_tarred import nemo_tarred_cuts
from icefall_lite.data.shar import load_shar_cuts, shar_split_dir
from icefall_lite.errors import UsageError
from icefall_lite.utils import str2bool

__all__ = [
    "AsrDataModule",
    "EpochGatedSpecAugment",
    "ExactResumeBucketingSampler",
    "set_augmentation_epoch",
    "worker_seed",
]

_INPUT_STRATEGIES = ("PrecomputedFeatures", "OnTheFlyFeatures", "AudioSamples")

# Duration buckets of the validation/test samplers (lhotse's default, as in icefall).
_EVAL_NUM_BUCKETS = 10


def _bucket_count(cuts: CutSet, wanted: int, what: str) -> int:
    """``wanted`` capped at the number of cuts: lhotse's bucket estimate asserts
    ``num_buckets <= len(cuts)``. Reads at most ``wanted`` cuts (cheap on a lazy CutSet).
    A result below 2 means bucketing is impossible (lhotse needs two buckets)."""
    available = sum(1 for _ in itertools.islice(cuts, wanted))
    if available < wanted:
        logging.info(f"{what}: only {available} cuts, so {available} duration buckets")
    return min(wanted, available)


class ExactResumeBucketingSampler(DynamicBucketingSampler):
    """DynamicBucketingSampler whose state counts consumed batches, not prefetched ones.

    lhotse's own state counts the batches the sampler produced; a DataLoader with workers asks
    for several batches ahead, so resuming from that count would skip batches the model never
    saw. :class:`_CountingDataLoader` tells this sampler how many batches the loop has received;
    on restore the sampler fast-forwards exactly that far (sampling is deterministic given
    seed and epoch, and fast-forwarding reads only cut metadata).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.num_batches_consumed = 0

    def __iter__(self) -> "ExactResumeBucketingSampler":
        if not self._just_restored_state:
            self.num_batches_consumed = 0
        return super().__iter__()

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["num_batches_consumed"] = self.num_batches_consumed
        return state

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        state_dict = dict(state_dict)  # lhotse pops keys; keep the caller's checkpoint intact
        self.num_batches_consumed = state_dict.pop("num_batches_consumed", None)
        super().load_state_dict(state_dict)

    def _fast_forward(self) -> None:
        # Replaces lhotse's fast-forward (which replays every *produced* batch) with a replay of
        # the consumed ones; with no count saved (a plain lhotse state) keep lhotse's behaviour.
        if self.num_batches_consumed is None:
            super()._fast_forward()
            self.num_batches_consumed = self.diagnostics.current_epoch_stats.total_batches
            return
        from lhotse.dataset.sampling.base import EpochDiagnostics

        consumed = self.num_batches_consumed  # read before iter(), which resets it
        epoch = self.diagnostics.current_epoch
        self.set_epoch(epoch)
        self.diagnostics.stats_per_epoch[epoch] = EpochDiagnostics(epoch=epoch)
        self._just_restored_state = False
        iter(self)
        for _ in range(consumed):
            next(self)
        self.num_batches_consumed = consumed
        self._just_restored_state = True


def worker_seed(seed: int, epoch: int, rank: int, worker_id: int) -> int:
    """A 32-bit seed for one DataLoader worker, mixed from all four numbers (no two
    combinations collide by simple arithmetic, as ``seed + epoch + worker_id`` would)."""
    return int(np.random.SeedSequence([seed, epoch, rank, worker_id]).generate_state(1)[0])


class _SeedWorker:
    """``worker_init_fn`` seeding each worker from (seed, epoch, rank, worker id) (picklable).

    Without it every epoch's fresh workers would repeat the previous epoch's augmentation,
    and every rank would repeat rank 0's. ``epoch`` is copied from the sampler (the training
    loop's ``train_dl.sampler.set_epoch``) by :class:`_CountingDataLoader` whenever an epoch's
    iterator, and with it its workers, is created.
    """

    def __init__(self, seed: int, rank: int) -> None:
        self.seed = seed
        self.rank = rank
        self.epoch = 0

    def __call__(self, worker_id: int) -> None:
        seed = worker_seed(self.seed, self.epoch, self.rank, worker_id)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        # lhotse transforms built with seed="randomized" read their seed from here.
        os.environ[LHOTSE_PROCESS_SEED] = str(seed)


class _CountingDataLoader(DataLoader):
    """DataLoader that reports each batch handed to the loop to its sampler and seeds its
    workers for the sampler's current epoch."""

    def __iter__(self):
        if isinstance(self.worker_init_fn, _SeedWorker):
            self.worker_init_fn.epoch = getattr(self.sampler, "epoch", 0)
        batches = super().__iter__()  # creates the sampler iterator (resets or resumes it)
        sampler = self.sampler
        start = getattr(sampler, "num_batches_consumed", 0) or 0
        for index, batch in enumerate(batches, start=1):
            if hasattr(sampler, "num_batches_consumed"):
                sampler.num_batches_consumed = start + index
            yield batch


class _EpochGated:
    """A transform that is off before ``start_epoch`` (1-based) and on from it.

    The training loop calls :func:`set_augmentation_epoch` before each epoch; DataLoader
    workers are created anew every epoch (``persistent_workers=False``), so they see the
    epoch set in the main process.
    """

    def __init__(self, *args: Any, start_epoch: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_epoch = start_epoch
        self.epoch = 1

    @property
    def active(self) -> bool:
        return self.epoch >= self.start_epoch


class _ProcessSeededCutMix(_EpochGated, CutMix):
    """CutMix whose choices (mix or not, which noise, SNR) come from the process's Python RNG.

    lhotse's CutMix keeps a private ``random.Random(42)`` that each epoch's new workers (and
    every rank) recreate, so the same cut would get the same noise every time. The global RNG
    is seeded per (seed, epoch, rank, worker) by :class:`_SeedWorker` in workers, and per
    (seed, epoch, rank) by the training loop in the main process (``--num-workers 0``), where
    checkpoints also store and restore it.
    """

    def __call__(self, cuts: CutSet) -> CutSet:
        if not self.active:
            return cuts
        self.rng = random.Random(random.getrandbits(64))
        return super().__call__(cuts)


class EpochGatedSpecAugment(_EpochGated, SpecAugment):
    """SpecAugment that leaves features unchanged before ``start_epoch``."""

    def __call__(self, features: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """(N, T, F) features -> the same, masked from ``start_epoch`` on."""
        if not self.active:
            return features
        return super().__call__(features, *args, **kwargs)

    def _forward_single(
        self, features: torch.Tensor, warp: bool = True, mask: bool = True
    ) -> torch.Tensor:
        """(T, F) -> (T, F). lhotse divides by the number of time masks, so with none (a valid
        choice) only the time warp and the frequency masks are applied here."""
        if self.num_frame_masks > 0:
            return super()._forward_single(features, warp=warp, mask=mask)
        if random.random() > self.p:  # the same per-utterance draw as lhotse's
            return features
        if warp and self.time_warp_factor is not None and self.time_warp_factor >= 1:
            features = time_warp(features, factor=self.time_warp_factor)
        if mask:
            features = mask_along_axis_optimized(
                features,
                mask_size=self.features_mask_size,
                mask_times=self.num_feature_masks,
                mask_value=features.mean(),
                axis=2,
            )
        return features


def set_augmentation_epoch(train_dl: DataLoader, epoch: int) -> None:
    """Tell the epoch-dependent transforms of a training loader which epoch comes next."""
    dataset = train_dl.dataset
    transforms = getattr(dataset, "cut_transforms", []) + getattr(dataset, "input_transforms", [])
    for transform in transforms:
        if isinstance(transform, _EpochGated):
            transform.epoch = epoch


class AsrDataModule:
    """Train/valid/test DataLoaders over lhotse cuts, configured by icefall's flags.

    Usage in a recipe::

        AsrDataModule.add_arguments(parser)
        args = parser.parse_args()
        data = AsrDataModule(args)
        train_cuts = data.load_cuts("synth", "train")
        train_dl = data.train_dataloaders(train_cuts, sampler_state_dict=state)
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        if args.input_strategy not in _INPUT_STRATEGIES:
            raise ValueError(
                f"--input-strategy must be one of {', '.join(_INPUT_STRATEGIES)}, "
                f"got {args.input_strategy!r}"
            )
        for flag in ("num_feature_masks", "features_mask_size", "frames_mask_size"):
            value = getattr(args, f"spec_aug_{flag}", 1)
            if value < (0 if flag.startswith("num") else 1):
                raise UsageError(
                    f"--spec-aug-{flag.replace('_', '-')} {value}: must be "
                    + ("0 or more" if flag.startswith("num") else "1 or more")
                )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(
            title="ASR data related options",
            description="Options for the cut manifests, samplers, batches and augmentation.",
        )
        group.add_argument(
            "--manifest-dir",
            type=Path,
            default=Path("data/fbank"),
            help="Folder with the cut manifests <prefix>_cuts_<split>.jsonl.gz.",
        )
        group.add_argument(
            "--cuts-prefix",
            type=str,
            default=None,
            help="Dataset name in the cut files <prefix>_cuts_<split>.jsonl.gz (default: the "
            "recipe's, e.g. synth; nemo for prepare.sh's NeMo-manifest stage).",
        )
        group.add_argument(
            "--shar-dir",
            type=Path,
            default=None,
            help="Read every split from Lhotse Shar shards <shar-dir>/<prefix>_<split>/ "
            "(prepare.sh's Shar stage) instead of --manifest-dir's cut manifests. The "
            "sampler flags and mid-epoch resume work the same; the batches are the same.",
        )
        group.add_argument(
            "--nemo-tarred-manifest",
            type=str,
            default=None,
            help="Train on a NeMo tarred audio dataset: its manifest (one line per utterance "
            "with shard_id; NeMo's manifest_filepath), or a brace pattern of per-shard "
            "manifests 'DIR/manifest_{0..N}.json'. Replaces the training splits' cut "
            "manifests (validation still reads --manifest-dir or --shar-dir); needs "
            "--nemo-tarred-audio. The tars are streamed in shard order each epoch and fbank "
            "is computed on the fly (whatever --on-the-fly-feats says). Bad manifest lines "
            "and unusable members are logged with their line number and skipped. Sampler: "
            "--max-duration as usual; --bucketing-sampler works on the stream (duration "
            "bins from its first 10000 cuts; shuffling and bucketing within a buffer of "
            "--num-buckets x 2000 cuts, which holds their audio bytes in memory). Mid-epoch "
            "resume (--start-batch) is exact: the stream is re-read from its first shard and "
            "the batches the checkpoint had consumed are skipped (metadata only, no features "
            "computed), so resuming costs one read of the tars up to that point. With "
            "--world-size N every rank reads every tar and trains on every N-th batch (lhotse's "
            "sampler), not one rank per shard as NeMo does.",
        )
        group.add_argument(
            "--nemo-tarred-audio",
            type=str,
            default=None,
            help="The tar shards of --nemo-tarred-manifest, in shard-id order, as NeMo's "
            "tarred_audio_filepaths: a brace pattern 'DIR/audio_{0..N}.tar' (quote it).",
        )
        group.add_argument(
            "--max-duration",
            type=float,
            default=200.0,
            help="Seconds of audio per batch (before padding); lower it on out-of-memory.",
        )
        group.add_argument(
            "--bucketing-sampler",
            type=str2bool,
            default=True,
            help="true: DynamicBucketingSampler (batches of similar durations, less padding). "
            "false: SimpleCutSampler.",
        )
        group.add_argument(
            "--num-buckets",
            type=int,
            default=30,
            help="Duration buckets of the bucketing sampler.",
        )
        group.add_argument(
            "--concatenate-cuts",
            type=str2bool,
            default=False,
            help="Join utterances into longer cuts to reduce padding (icefall's flag).",
        )
        group.add_argument(
            "--duration-factor",
            type=float,
            default=1.0,
            help="With --concatenate-cuts: maximum concatenated duration relative to the longest.",
        )
        group.add_argument(
            "--gap",
            type=float,
            default=1.0,
            help="With --concatenate-cuts: seconds of padding between joined cuts.",
        )
        group.add_argument(
            "--shuffle",
            type=str2bool,
            default=True,
            help="Shuffle training cuts (the order is still reproducible from the seed and epoch).",
        )
        group.add_argument(
            "--drop-last",
            type=str2bool,
            default=True,
            help="Drop the last, incomplete training batch.",
        )
        group.add_argument(
            "--return-cuts",
            type=str2bool,
            default=True,
            help="Put the cuts in batch['supervisions']['cut'] (decoding uses their ids).",
        )
        group.add_argument(
            "--num-workers",
            type=int,
            default=2,
            help="DataLoader worker processes that read and augment batches.",
        )
        group.add_argument(
            "--on-the-fly-feats",
            type=str2bool,
            default=False,
            help="Compute fbank from audio while training instead of reading stored features.",
        )
        group.add_argument(
            "--enable-spec-aug",
            type=str2bool,
            default=True,
            help="SpecAugment (time warp, frequency and time masks) on training batches.",
        )
        group.add_argument(
            "--spec-aug-time-warp-factor",
            type=int,
            default=80,
            help="SpecAugment time-warp factor; values below 1 disable time warping.",
        )
        # Mask counts and sizes: icefall's LibriSpeech values by default; a short CPU run on
        # synthetic voices wants far milder ones (RESULTS.md, "egs/synth/ASR: the main job").
        group.add_argument(
            "--spec-aug-num-feature-masks",
            type=int,
            default=2,
            help="SpecAugment frequency masks per utterance.",
        )
        group.add_argument(
            "--spec-aug-features-mask-size",
            type=int,
            default=27,
            help="SpecAugment: widest frequency mask, in mel bins.",
        )
        group.add_argument(
            "--spec-aug-num-frame-masks",
            type=int,
            default=-1,
            help="SpecAugment time masks per utterance (-1: icefall's 10, or 2 with lhotse "
            "versions that count masks per 10 s).",
        )
        group.add_argument(
            "--spec-aug-frames-mask-size",
            type=int,
            default=100,
            help="SpecAugment: longest time mask, in frames.",
        )
        group.add_argument(
            "--spec-aug-max-frames-mask-fraction",
            type=float,
            default=0.15,
            help="SpecAugment: at most this fraction of an utterance's frames is masked.",
        )
        group.add_argument(
            "--spec-aug-start-epoch",
            type=int,
            default=1,
            help="First epoch with SpecAugment (with --enable-spec-aug 1): the first epochs of "
            "a short run learn faster on clean features, later ones generalise better masked.",
        )
        group.add_argument(
            "--enable-spec-masks",
            type=str2bool,
            default=False,
            help="SpecAugment frequency/time masks and SpecCutout rectangles without time warp "
            "(icefall_lite.data.masks; Jasper/QuartzNet's augmentation), sized by the "
            "--spec-* flags below. Independent of --enable-spec-aug.",
        )
        for flag, default, what in (
            ("--spec-freq-masks", 2, "frequency masks per utterance"),
            ("--spec-freq-width", 15, "most fbank bins per frequency mask"),
            ("--spec-time-masks", 2, "time masks per utterance"),
            ("--spec-time-width", 25, "most frames per time mask"),
            ("--spec-cutout-rects", 5, "SpecCutout rectangles per utterance"),
            ("--spec-cutout-time", 25, "most frames per rectangle"),
            ("--spec-cutout-freq", 15, "most fbank bins per rectangle"),
        ):
            group.add_argument(
                flag, type=int, default=default, help=f"--enable-spec-masks: {what}."
            )
        group.add_argument(
            "--enable-musan",
            type=str2bool,
            default=True,
            help="Mix noise/music cuts (--noise-cuts) into training cuts on the fly.",
        )
        group.add_argument(
            "--musan-start-epoch",
            type=int,
            default=1,
            help="First epoch with noise mixing (with --enable-musan 1).",
        )
        group.add_argument(
            "--noise-cuts",
            type=str,
            default="musan_cuts.jsonl.gz",
            help="Noise CutSet for --enable-musan, relative to --manifest-dir unless absolute "
            "(librispeech: musan_cuts.jsonl.gz; synth: synth_cuts_noise.jsonl.gz).",
        )
        group.add_argument(
            "--input-strategy",
            type=str,
            default="PrecomputedFeatures",
            help="lhotse input strategy: PrecomputedFeatures or AudioSamples "
            "(OnTheFlyFeatures is chosen with --on-the-fly-feats).",
        )

    # ------------------------------------------------------------------ cut manifests
    @property
    def reads_nemo_tarred(self) -> bool:
        """Training cuts come from ``--nemo-tarred-manifest``/``--nemo-tarred-audio``."""
        return bool(getattr(self.args, "nemo_tarred_manifest", None))

    def load_splits(self, prefix: str, splits: Sequence[str]) -> CutSet:
        """The named splits' cuts (:meth:`load_cuts` each), lazily concatenated."""
        cuts = self.load_cuts(prefix, splits[0])
        for split in splits[1:]:
            cuts = cuts + self.load_cuts(prefix, split)
        return cuts

    def train_cuts(self, prefix: str, splits: Sequence[str]) -> CutSet:
        """The training cuts: with ``--nemo-tarred-manifest`` the NeMo tarred set (a lazy
        stream over its tars, audio in memory, no features), else :meth:`load_splits`."""
        if not self.reads_nemo_tarred:
            return self.load_splits(prefix, splits)
        manifest, tars = self.args.nemo_tarred_manifest, self.args.nemo_tarred_audio
        logging.info(f"Training on the NeMo tarred set {manifest} with the tars {tars}")
        return nemo_tarred_cuts(manifest, tars)

    def load_cuts(self, prefix: str, split: str) -> CutSet:
        """Lazily open ``<manifest-dir>/<prefix>_cuts_<split>.jsonl.gz`` (see :func:`load_cuts`),
        or with ``--shar-dir`` the Shar shards ``<shar-dir>/<prefix>_<split>/``."""
        shar_dir = getattr(self.args, "shar_dir", None)
        if shar_dir is not None:
            folder = shar_split_dir(shar_dir, prefix, split)
            logging.info(f"Reading {prefix} {split} from the Shar shards in {folder}")
            return load_shar_cuts(folder)
        return load_cuts(self.args.manifest_dir, prefix, split)

    def noise_cuts(self) -> CutSet:
        """The CutSet mixed in by ``--enable-musan``."""
        path = Path(self.args.noise_cuts)
        if not path.is_absolute():
            path = Path(self.args.manifest_dir) / path
        return load_cut_file(path, made_by="prepare.sh's noise/MUSAN fbank stage").to_eager()

    # ------------------------------------------------------------------ dataloaders
    def _input_strategy(self, training: bool = False):
        if training and self.reads_nemo_tarred:
            # Tarred audio has no stored features. Fault tolerant: a member whose header
            # read but whose samples do not decode is dropped from its batch (lhotse warns
            # naming the cut) instead of stopping the epoch.
            return OnTheFlyFeatures(make_fbank_extractor("lhotse"), fault_tolerant=True)
        if self.args.on_the_fly_feats:
            return OnTheFlyFeatures(make_fbank_extractor("lhotse"))
        if self.args.input_strategy == "OnTheFlyFeatures":
            return OnTheFlyFeatures(make_fbank_extractor("lhotse"))
        if self.args.input_strategy == "AudioSamples":
            return AudioSamples()
        return PrecomputedFeatures()

    def train_dataloaders(
        self,
        cuts_train: CutSet,
        sampler_state_dict: Optional[Dict[str, Any]] = None,
        seed: int = 42,
        world_size: Optional[int] = None,
        rank: Optional[int] = None,
    ) -> DataLoader:
        """The training DataLoader (augmentation per the flags, shuffled buckets).

        Args:
          cuts_train: training cuts (ideally already passed through filter_cuts_for_training).
          sampler_state_dict: ``train_dl.sampler.state_dict()`` from a checkpoint, to resume at
            the exact batch where that run stopped.
          seed: sampler shuffling; with the epoch and rank, the workers' augmentation seeds.
          world_size, rank: DDP; default taken from torch.distributed when initialised.
        """
        args = self.args
        transforms = []
        if args.enable_musan:
            logging.info(f"Mixing in noise cuts from {args.noise_cuts}")
            transforms.append(
                _ProcessSeededCutMix(
                    cuts=self.noise_cuts(),
                    p=0.5,
                    snr=(10, 20),
                    preserve_id=True,
                    start_epoch=args.musan_start_epoch,
                )
            )
        if args.concatenate_cuts:
            transforms = [
                CutConcatenate(duration_factor=args.duration_factor, gap=args.gap)
            ] + transforms

        input_transforms = []
        if args.enable_spec_aug:
            input_transforms.append(self._spec_augment())
        if getattr(args, "enable_spec_masks", False):
            input_transforms.append(
                SpecMasks(
                    freq_masks=args.spec_freq_masks,
                    freq_width=args.spec_freq_width,
                    time_masks=args.spec_time_masks,
                    time_width=args.spec_time_width,
                    rect_masks=args.spec_cutout_rects,
                    rect_time=args.spec_cutout_time,
                    rect_freq=args.spec_cutout_freq,
                )
            )
            logging.info(f"Training batches get {input_transforms[-1]}")

        dataset = K2SpeechRecognitionDataset(
            input_strategy=self._input_strategy(training=True),
            cut_transforms=transforms,
            input_transforms=input_transforms,
            return_cuts=args.return_cuts,
        )
        num_buckets = 0
        if args.bucketing_sampler:
            num_buckets = _bucket_count(cuts_train, args.num_buckets, "training sampler")
        if num_buckets >= 2:
            sampler = ExactResumeBucketingSampler(
                cuts_train,
                max_duration=args.max_duration,
                shuffle=args.shuffle,
                num_buckets=num_buckets,
                buffer_size=args.num_buckets * 2000,
                drop_last=args.drop_last,
                seed=seed,
                world_size=world_size,
                rank=rank,
            )
        else:
            sampler = SimpleCutSampler(
                cuts_train,
                max_duration=args.max_duration,
                shuffle=args.shuffle,
                drop_last=args.drop_last,
                seed=seed,
                world_size=world_size,
                rank=rank,
            )
        if sampler_state_dict is not None:
            logging.info("Restoring the training sampler's state from the checkpoint")
            sampler.load_state_dict(sampler_state_dict)
        return _CountingDataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=args.num_workers,
            persistent_workers=False,  # new workers each epoch, seeded for that epoch
            worker_init_fn=_SeedWorker(seed, rank=sampler.rank),
            # The DataLoader draws a base seed for every epoch's iterator; drawing it from its
            # own generator leaves the global RNG (which checkpoints restore) untouched.
            generator=torch.Generator().manual_seed(seed),
        )

    def _spec_augment(self) -> EpochGatedSpecAugment:
        # lhotse changed num_frame_masks' meaning in 0.12 (per utterance, not per 10 s); icefall
        # uses 10 masks with the new meaning.
        args = self.args
        num_frame_masks = args.spec_aug_num_frame_masks
        if num_frame_masks < 0:
            num_frame_masks = 10
            parameters = inspect.signature(SpecAugment.__init__).parameters
            if "num_frame_masks" in parameters and parameters["num_frame_masks"].default == 1:
                num_frame_masks = 2
        return EpochGatedSpecAugment(
            start_epoch=args.spec_aug_start_epoch,
            time_warp_factor=args.spec_aug_time_warp_factor,
            num_frame_masks=num_frame_masks,
            features_mask_size=args.spec_aug_features_mask_size,
            num_feature_masks=args.spec_aug_num_feature_masks,
            frames_mask_size=args.spec_aug_frames_mask_size,
            max_frames_mask_fraction=args.spec_aug_max_frames_mask_fraction,
        )

    def _eval_dataloader(self, cuts: CutSet) -> DataLoader:
        dataset = K2SpeechRecognitionDataset(
            input_strategy=self._input_strategy(),
            return_cuts=self.args.return_cuts,
        )
        num_buckets = _bucket_count(cuts, _EVAL_NUM_BUCKETS, "evaluation sampler")
        if num_buckets >= 2:
            sampler = DynamicBucketingSampler(
                cuts, max_duration=self.args.max_duration, shuffle=False, num_buckets=num_buckets
            )
        else:
            sampler = SimpleCutSampler(cuts, max_duration=self.args.max_duration, shuffle=False)
        return DataLoader(
            dataset, sampler=sampler, batch_size=None, num_workers=self.args.num_workers
        )

    def valid_dataloaders(self, cuts_valid: CutSet) -> DataLoader:
        """Validation DataLoader: no augmentation, fixed order."""
        return self._eval_dataloader(cuts_valid)

    def test_dataloaders(self, cuts: CutSet) -> DataLoader:
        """Test DataLoader: no augmentation, fixed order; use --return-cuts true for cut ids."""
        return self._eval_dataloader(cuts)
