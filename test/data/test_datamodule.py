import argparse
import io
import random

import pytest
import torch

from icefall_lite.data import AsrDataModule


def make_args(manifest_dir, *flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    AsrDataModule.add_arguments(parser)
    return parser.parse_args(
        [
            "--manifest-dir",
            str(manifest_dir),
            "--max-duration",
            "8",
            "--num-workers",
            "0",
            "--enable-musan",
            "false",
            "--enable-spec-aug",
            "false",
            *flags,
        ]
    )


def batch_ids(batch) -> list:
    return [cut.id for cut in batch["supervisions"]["cut"]]


def test_train_batches_have_icefall_layout(tiny_corpus):
    data = AsrDataModule(make_args(tiny_corpus))
    cuts = data.load_cuts("tiny", "train")
    batch = next(iter(data.train_dataloaders(cuts)))
    inputs = batch["inputs"]
    assert inputs.dim() == 3 and inputs.shape[2] == 80
    supervisions = batch["supervisions"]
    assert len(supervisions["text"]) == inputs.shape[0]
    assert supervisions["num_frames"].shape == (inputs.shape[0],)
    assert int(supervisions["num_frames"].max()) == inputs.shape[1]
    assert sum(cut.duration for cut in supervisions["cut"]) <= 8.0


def test_every_epoch_covers_the_cuts_once(tiny_corpus):
    data = AsrDataModule(make_args(tiny_corpus, "--drop-last", "false"))
    cuts = data.load_cuts("tiny", "train")
    seen = [cid for batch in data.train_dataloaders(cuts) for cid in batch_ids(batch)]
    assert sorted(seen) == sorted(cut.id for cut in cuts)


@pytest.mark.parametrize("num_workers", ["0", "1"])
def test_resume_mid_epoch_continues_at_the_next_batch(tiny_corpus, num_workers):
    flags = ("--num-workers", num_workers, "--drop-last", "false")
    data = AsrDataModule(make_args(tiny_corpus, *flags))
    cuts = data.load_cuts("tiny", "train")

    reference_dl = data.train_dataloaders(cuts)
    reference_dl.sampler.set_epoch(3)
    reference = [batch_ids(b) for b in reference_dl]
    assert len(reference) >= 4

    interrupted_dl = data.train_dataloaders(cuts)
    interrupted_dl.sampler.set_epoch(3)
    consumed = 2
    for index, batch in enumerate(interrupted_dl):
        assert batch_ids(batch) == reference[index]
        if index + 1 == consumed:
            # With workers the DataLoader has already asked the sampler for more batches.
            state = interrupted_dl.sampler.state_dict()
            break
    # The state goes through a checkpoint file in real training.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=False)

    resumed_dl = AsrDataModule(make_args(tiny_corpus, *flags)).train_dataloaders(
        cuts, sampler_state_dict=state
    )
    resumed = [batch_ids(b) for b in resumed_dl]
    assert resumed == reference[consumed:]

    # The following epoch starts from its beginning again.
    resumed_dl.sampler.set_epoch(4)
    next_epoch = [cid for b in resumed_dl for cid in batch_ids(b)]
    assert sorted(next_epoch) == sorted(cut.id for cut in cuts)


def _first_train_batch(tiny_corpus, *flags):
    data = AsrDataModule(make_args(tiny_corpus, "--shuffle", "false", *flags))
    return next(iter(data.train_dataloaders(data.load_cuts("tiny", "train"))))


def _rows(batch) -> list:
    """Each utterance's unpadded (T, 80) features."""
    return [x[:n] for x, n in zip(batch["inputs"], batch["supervisions"]["num_frames"].tolist())]


def test_musan_alone_mixes_noise_into_some_cuts_only(tiny_corpus):
    plain = _first_train_batch(tiny_corpus)
    noise = ("--enable-musan", "true", "--noise-cuts", "tiny_cuts_noise.jsonl.gz")
    random.seed(3)  # with --num-workers 0, CutMix draws from the process's RNG
    noisy = _first_train_batch(tiny_corpus, *noise)
    assert batch_ids(plain) == batch_ids(noisy)
    mixed = [type(cut).__name__ == "MixedCut" for cut in noisy["supervisions"]["cut"]]
    assert any(mixed) and not all(mixed), mixed  # p = 0.5
    for is_mixed, a, b in zip(mixed, _rows(plain), _rows(noisy)):
        if is_mixed:
            # Mixing adds energy in every mel bin: log-fbank goes up, never down (lilcom: 0.05).
            assert (b >= a - 0.05).all() and (b > a + 0.05).float().mean() > 0.1
        else:
            torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_spec_aug_alone_masks_bands_and_keeps_the_rest(tiny_corpus):
    plain = _first_train_batch(tiny_corpus)
    masked = _first_train_batch(
        tiny_corpus, "--enable-spec-aug", "true", "--spec-aug-time-warp-factor", "0"
    )
    assert batch_ids(plain) == batch_ids(masked)
    for a, b in zip(_rows(plain), _rows(masked)):
        changed = b != a
        assert changed.any() and not changed.all()
        # Masks fill whole frequency bands or whole frames: unchanged values are untouched.
        whole_bins = changed.all(dim=0)
        whole_frames = changed.all(dim=1)
        assert whole_bins.any() or whole_frames.any()
        assert not (changed & ~whole_bins.unsqueeze(0) & ~whole_frames.unsqueeze(1)).any()


def test_on_the_fly_features_match_precomputed_ones(tiny_corpus):
    flags = ("--shuffle", "false")
    cuts = AsrDataModule(make_args(tiny_corpus)).load_cuts("tiny", "train")
    stored = next(iter(AsrDataModule(make_args(tiny_corpus, *flags)).valid_dataloaders(cuts)))
    on_the_fly = AsrDataModule(make_args(tiny_corpus, "--on-the-fly-feats", "true", *flags))
    computed = next(iter(on_the_fly.valid_dataloaders(cuts)))
    assert batch_ids(stored) == batch_ids(computed)
    assert torch.equal(stored["supervisions"]["num_frames"], computed["supervisions"]["num_frames"])
    for a, b in zip(_rows(stored), _rows(computed)):
        assert b.shape == a.shape and b.shape[1] == 80
        # Lilcom storage is lossy (~0.016 here). The last two frames are left out: computed on
        # the cut's own audio, their windows run past its end (stored ones saw the recording).
        torch.testing.assert_close(b[:-2], a[:-2], rtol=0, atol=0.03)


def test_test_dataloader_keeps_every_cut(tiny_corpus):
    data = AsrDataModule(make_args(tiny_corpus))
    cuts = data.load_cuts("tiny", "train")
    ids = [cid for batch in data.test_dataloaders(cuts) for cid in batch_ids(batch)]
    assert sorted(ids) == sorted(cut.id for cut in cuts)


def test_missing_cut_file_names_file_and_stage(tmp_path):
    data = AsrDataModule(make_args(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"synth_cuts_dev\.jsonl\.gz.*fbank stage"):
        data.load_cuts("synth", "dev")


def test_bad_input_strategy_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="--input-strategy"):
        AsrDataModule(make_args(tmp_path, "--input-strategy", "Nope"))


@pytest.mark.parametrize("num_cuts", [1, 3])
def test_loaders_work_on_sets_smaller_than_the_bucket_count(tiny_corpus, num_cuts, tmp_path):
    # Small human test sets have fewer cuts than the samplers' duration buckets.
    from lhotse import CutSet

    data = AsrDataModule(make_args(tiny_corpus, "--num-buckets", "30"))
    small_file = tmp_path / "tiny_cuts_small.jsonl.gz"
    data.load_cuts("tiny", "train").subset(first=num_cuts).to_file(small_file)
    cuts = CutSet.from_jsonl_lazy(small_file)  # as recipes open them
    expected = sorted(cut.id for cut in cuts)
    for loader in (data.valid_dataloaders(cuts), data.test_dataloaders(cuts)):
        assert sorted(cid for batch in loader for cid in batch_ids(batch)) == expected
    train_dl = AsrDataModule(make_args(tiny_corpus, "--drop-last", "false")).train_dataloaders(cuts)
    assert sorted(cid for batch in train_dl for cid in batch_ids(batch)) == expected


def test_worker_seed_mixes_seed_epoch_rank_and_worker():
    from icefall_lite.data.datamodule import worker_seed

    base = worker_seed(42, 0, 0, 0)
    assert worker_seed(42, 0, 0, 0) == base
    others = [worker_seed(*args) for args in [(43, 0, 0, 0), (42, 1, 0, 0), (42, 0, 1, 0)]]
    others += [worker_seed(42, 0, 0, 1), worker_seed(42, 1, 0, 0), worker_seed(42, 0, 1, 0)]
    assert base not in others
    # epoch and worker id must not be interchangeable (as in seed + epoch + worker_id)
    assert worker_seed(42, 1, 0, 0) != worker_seed(42, 0, 0, 1)


def _augmenting_loader(tiny_corpus, cuts, max_duration="8", world_size=None, rank=None):
    flags = [
        "--num-workers",
        "1",
        "--bucketing-sampler",
        "false",
        "--shuffle",
        "false",
        "--drop-last",
        "false",
        "--max-duration",
        max_duration,
        "--enable-musan",
        "true",
        "--noise-cuts",
        "tiny_cuts_noise.jsonl.gz",
        "--enable-spec-aug",
        "true",
    ]
    data = AsrDataModule(make_args(tiny_corpus, *flags))
    return data.train_dataloaders(cuts, seed=7, world_size=world_size, rank=rank)


def _first_batch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return next(iter(loader))


def test_augmentation_differs_across_epochs_and_repeats_for_the_same_epoch(tiny_corpus):
    cuts = AsrDataModule(make_args(tiny_corpus)).load_cuts("tiny", "train").subset(first=6)
    global_state = torch.get_rng_state()
    loader = _augmenting_loader(tiny_corpus, cuts)
    epoch0, epoch1 = _first_batch(loader, 0), _first_batch(loader, 1)
    assert batch_ids(epoch0) == batch_ids(epoch1)  # same cuts, so only augmentation differs
    assert not torch.equal(epoch0["inputs"], epoch1["inputs"])
    again = _first_batch(_augmenting_loader(tiny_corpus, cuts), 1)
    assert torch.equal(again["inputs"], epoch1["inputs"])
    # the loader seeds its workers from its own generator, not the global one
    assert torch.equal(torch.get_rng_state(), global_state)


def test_augmentation_differs_across_ranks(tiny_corpus):
    cut = next(iter(AsrDataModule(make_args(tiny_corpus)).load_cuts("tiny", "train")))
    # Two copies of one utterance, one per batch: rank 0 gets one, rank 1 the other.
    from lhotse import CutSet

    cuts = CutSet.from_cuts([cut, cut.with_id(cut.id + "-copy")])
    max_duration = str(cut.duration + 0.01)
    ranks = [_augmenting_loader(tiny_corpus, cuts, max_duration, 2, rank) for rank in (0, 1)]
    batches = [_first_batch(loader, 0) for loader in ranks]
    assert [batch_ids(b) for b in batches] == [[cut.id], [cut.id + "-copy"]]
    assert not torch.equal(batches[0]["inputs"], batches[1]["inputs"])


def test_spec_aug_starts_at_its_epoch_in_the_workers(tiny_corpus):
    """--spec-aug-start-epoch 2: epoch 1 batches are the plain features (in a DataLoader worker,
    as in training), epoch 2 batches are masked with the flags' mask sizes."""
    from icefall_lite.data.datamodule import set_augmentation_epoch

    cuts = AsrDataModule(make_args(tiny_corpus)).load_cuts("tiny", "train").subset(first=4)
    common = ["--num-workers", "1", "--bucketing-sampler", "false", "--shuffle", "false"]
    plain_loader = AsrDataModule(make_args(tiny_corpus, *common)).train_dataloaders(cuts, seed=7)
    flags = common + ["--enable-spec-aug", "true", "--spec-aug-time-warp-factor", "0"]
    flags += ["--spec-aug-start-epoch", "2", "--spec-aug-num-frame-masks", "0"]
    flags += ["--spec-aug-num-feature-masks", "1", "--spec-aug-features-mask-size", "3"]
    loader = AsrDataModule(make_args(tiny_corpus, *flags)).train_dataloaders(cuts, seed=7)
    plain = _first_batch(plain_loader, 0)
    set_augmentation_epoch(loader, 1)
    assert torch.equal(_first_batch(loader, 0)["inputs"], plain["inputs"])
    set_augmentation_epoch(loader, 2)
    masked = _first_batch(loader, 0)
    assert batch_ids(masked) == batch_ids(plain)
    for a, b in zip(_rows(plain), _rows(masked)):
        changed_bins = (b != a).any(dim=0)
        # one frequency mask of at most 3 bins, no time masks (lhotse applies it with p=0.9)
        assert changed_bins.sum() <= 3
        assert not (b != a).all(dim=1).any()
    assert not torch.equal(masked["inputs"], plain["inputs"])


@pytest.mark.parametrize(
    "flag, value", [("--spec-aug-num-feature-masks", "-1"), ("--spec-aug-frames-mask-size", "0")]
)
def test_bad_spec_aug_sizes_name_the_flag(tmp_path, flag, value):
    from icefall_lite.errors import UsageError

    with pytest.raises(UsageError, match=f"{flag} {value}: must be"):
        AsrDataModule(make_args(tmp_path, flag, value))


def test_noise_mixing_starts_at_its_epoch(tiny_corpus):
    """--musan-start-epoch 2: no cut is mixed before epoch 2, some are from then on."""
    from icefall_lite.data.datamodule import set_augmentation_epoch

    cuts = AsrDataModule(make_args(tiny_corpus)).load_cuts("tiny", "train").subset(first=6)
    flags = ["--num-workers", "1", "--bucketing-sampler", "false", "--shuffle", "false"]
    flags += ["--enable-musan", "true", "--noise-cuts", "tiny_cuts_noise.jsonl.gz"]
    flags += ["--musan-start-epoch", "2", "--return-cuts", "true"]
    loader = AsrDataModule(make_args(tiny_corpus, *flags)).train_dataloaders(cuts, seed=7)

    def mixed(epoch):
        set_augmentation_epoch(loader, epoch)
        loader.sampler.set_epoch(epoch - 1)
        return [type(c).__name__ == "MixedCut" for b in loader for c in b["supervisions"]["cut"]]

    assert not any(mixed(1))
    assert any(mixed(2))
