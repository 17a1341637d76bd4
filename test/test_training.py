"""The shared training loop: flags, loss of a batch, steps, gradient accumulation, bad batches."""

import argparse
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from icefall_lite.data import AsrDataModule
from icefall_lite.errors import UsageError
from icefall_lite.models import AsrModel, Decoder, Joiner, add_model_arguments
from icefall_lite.models.zipformer.scaling import Whiten
from icefall_lite.training import (
    NonFiniteLossError,
    add_training_arguments,
    check_training_arguments,
    compute_loss,
    compute_validation_loss,
    get_training_params,
    restore_regulariser_state,
    train_one_epoch,
)
from icefall_lite.utils import AttributeDict

VOCAB_SIZE = 10


class _FrontEnd(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Linear(80, dim)

    def forward(self, x, x_lens):
        t_out = ((x.size(1) - 7) // 2 + 1) // 2
        return self.proj(x[:, : 4 * t_out : 4]), ((x_lens - 7) // 2 + 1) // 2


class _Encoder(nn.Module):
    """Per-frame MLP: utterances in a batch do not interact (so batch splits are exact)."""

    def __init__(self, dim):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Dropout(0.1))

    def forward(self, x, x_lens, src_key_padding_mask):
        return self.net(x), x_lens


def _model(dim=16) -> AsrModel:
    return AsrModel(
        encoder_embed=_FrontEnd(dim),
        encoder=_Encoder(dim),
        decoder=Decoder(VOCAB_SIZE, dim, blank_id=0, context_size=2),
        joiner=Joiner(dim, dim, dim, VOCAB_SIZE),
        encoder_dim=dim,
        decoder_dim=dim,
        vocab_size=VOCAB_SIZE,
    )


class _Tokenizer:
    """Letters a..i -> ids 1..9 (a stand-in for the SentencePiece model)."""

    def encode(self, texts, out_type=int):
        return [[ord(c) - ord("a") + 1 for c in text if c != " "] for text in texts]


class _Scheduler:
    def __init__(self):
        self.batches = []

    def step_batch(self, batch):
        self.batches.append(batch)

    def get_last_lr(self):
        return [0.1]

    def state_dict(self):
        return {"batches": list(self.batches)}


class _Cut:
    def __init__(self, cut_id):
        self.id = cut_id


def _batch(texts, num_frames, seed, poison=False):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(len(texts), max(num_frames), 80, generator=generator)
    if poison:
        features[0, 0, 0] = float("nan")
    return {
        "inputs": features,
        "supervisions": {
            "text": texts,
            "num_frames": torch.tensor(num_frames),
            "cut": [_Cut(f"cut-{seed}-{i}") for i in range(len(texts))],
        },
    }


def _params(**overrides) -> AttributeDict:
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    add_model_arguments(parser)
    AsrDataModule.add_arguments(parser)
    params = get_training_params()
    params.update(vars(parser.parse_args([])))
    params.update(
        {
            "cur_epoch": 1,
            "prune_range": 3,
            "warm_step": 4,
            "log_interval": 1,
            "save_every_n": 0,
            "valid_interval": 0,
        }
    )
    params.update(overrides)
    return params


def _fixed_batches(n=4):
    texts = ["abc", "de", "fghi", "ab"]
    return [_batch(texts, [60, 50, 70, 40], seed=i) for i in range(n)]


def _train(params, model, batches, lr=0.05):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    scheduler = _Scheduler()
    train_one_epoch(
        params=params,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        sp=_Tokenizer(),
        train_dl=batches,
        valid_dl=None,
        scaler=scaler,
    )
    return scheduler


# ---------------------------------------------------------------- compute_loss


def test_compute_loss_applies_the_warm_up_scales_and_counts_frames():
    model = _model()
    model.eval()
    batch = _fixed_batches(1)[0]
    params = _params(batch_idx_train=0, warm_step=4, simple_loss_scale=0.5)
    loss, info = compute_loss(params, model, _Tokenizer(), batch, is_training=False)
    assert not loss.requires_grad
    # at step 0: 1.0 * simple + 0.1 * pruned
    assert loss.item() == pytest.approx(info["simple_loss"] + 0.1 * info["pruned_loss"], 1e-5)
    assert info["frames"] == sum(((n - 7) // 2 + 1) // 2 for n in [60, 50, 70, 40])
    assert info["utterances"] == 4

    params.batch_idx_train = 10  # after warm-up: 0.5 * simple + 1.0 * pruned
    loss, info = compute_loss(params, model, _Tokenizer(), batch, is_training=True)
    assert loss.requires_grad
    assert loss.item() == pytest.approx(0.5 * info["simple_loss"] + info["pruned_loss"], 1e-5)


def test_compute_loss_adds_the_ctc_term():
    model = AsrModel(
        _FrontEnd(16),
        _Encoder(16),
        Decoder(VOCAB_SIZE, 16, 0, 2),
        Joiner(16, 16, 16, VOCAB_SIZE),
        16,
        16,
        VOCAB_SIZE,
        use_ctc=True,
    )
    model.eval()
    params = _params(use_ctc=True, ctc_loss_scale=0.2, batch_idx_train=100)
    loss, info = compute_loss(params, model, _Tokenizer(), _fixed_batches(1)[0], False)
    expected = 0.5 * info["simple_loss"] + info["pruned_loss"] + 0.2 * info["ctc_loss"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- train_one_epoch


def test_training_steps_lower_the_validation_loss():
    model = _model()
    batches = _fixed_batches(4)
    params = _params()
    before = compute_validation_loss(params, model, _Tokenizer(), batches)
    for epoch in range(1, 6):
        params.cur_epoch = epoch
        _train(params, model, batches)
    after = compute_validation_loss(params, model, _Tokenizer(), batches)
    assert params.batch_idx_train == 20
    assert after["loss"] / after["frames"] < 0.8 * before["loss"] / before["frames"]
    assert params.best_train_epoch == 5 and math.isfinite(params.train_loss)


def test_validation_does_not_move_the_training_rng():
    model = _model()
    torch.manual_seed(3)
    compute_validation_loss(_params(), model, _Tokenizer(), _fixed_batches(2))
    after_validation = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after_validation, torch.rand(1))


def test_gradient_accumulation_matches_one_big_batch():
    """Two half batches with --accum-grad 2 give the update of the whole batch."""
    torch.manual_seed(0)
    model_a = _model()
    model_a.encoder.net[2].p = 0.0  # no dropout: compare deterministic updates
    model_b = _model()
    model_b.load_state_dict(model_a.state_dict())
    model_b.encoder.net[2].p = 0.0

    texts, frames = ["abc", "de", "fghi", "ab"], [60, 50, 70, 40]
    whole = _batch(texts, frames, seed=7)
    first = {
        "inputs": whole["inputs"][:2, :60],
        "supervisions": {"text": texts[:2], "num_frames": torch.tensor(frames[:2])},
    }
    second = {
        "inputs": whole["inputs"][2:],
        "supervisions": {"text": texts[2:], "num_frames": torch.tensor(frames[2:])},
    }
    _train(_params(), model_a, [whole])
    params_b = _params(accum_grad=2)
    _train(params_b, model_b, [first, second])
    assert params_b.batch_idx_train == 1
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_trailing_partial_window_is_dropped():
    model = _model()
    params = _params(accum_grad=2)
    scheduler = _train(params, model, _fixed_batches(3))
    assert params.batch_idx_train == 1 and scheduler.batches == [1]
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_non_finite_batch_is_skipped_with_a_warning_naming_the_cuts(caplog):
    model = _model()
    batches = _fixed_batches(3)
    batches[1] = _batch(["abc", "de"], [60, 50], seed=99, poison=True)
    params = _params()
    with caplog.at_level(logging.WARNING):
        _train(params, model, batches)
    assert params.batch_idx_train == 2  # the poisoned step did not count
    assert "cut-99-0" in caplog.text
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize(
    "overrides, names",
    [
        ({"drop_last": True, "bucketing_sampler": True, "num_buckets": 30}, "--num-buckets 30"),
        ({"drop_last": False}, "not empty"),
    ],
)
def test_an_epoch_without_batches_is_a_usage_error(overrides, names):
    # A small training set with --drop-last and many buckets yields no batch: every epoch
    # would "train" on nothing and save the untrained model.
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    params = _params(manifest_dir="data/tiny", max_duration=30, **overrides)
    with pytest.raises(UsageError, match="gave no batch of --max-duration 30") as error:
        _train(params, model, [])
    assert names in str(error.value) and "data/tiny" in str(error.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_repeated_non_finite_batches_stop_training():
    model = _model()
    batches = [_batch(["abc"], [60], seed=i, poison=True) for i in range(5)]
    params = _params(max_nonfinite_batches=3)
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps"):
        _train(params, model, batches)
    assert params.batch_idx_train == 0


# ---------------------------------------------------------------- flags


@pytest.fixture
def bpe_file(tmp_path):
    path = tmp_path / "bpe.model"
    path.write_bytes(b"not read by the checks")
    return path


@pytest.mark.parametrize(
    "overrides, flag",
    [
        ({"max_duration": -5}, "--max-duration"),
        ({"num_epochs": 0}, "--num-epochs"),
        ({"accum_grad": 0}, "--accum-grad"),
        ({"keep_last_k": 0}, "--keep-last-k"),
        ({"start_batch": -1}, "--start-batch"),
        ({"num_threads": -2}, "--num-threads"),
        ({"start_epoch": 5, "num_epochs": 3}, "--start-epoch"),
        ({"start_batch": 100}, "--start-batch"),
        ({"start_epoch": 3}, "--start-epoch"),
        ({"init_from": "no/such.pt"}, "--init-from"),
        ({"use_fp16": True, "use_bf16": True}, "--use-fp16"),
        ({"num_encoder_layers": "1,1", "downsampling_factor": "1,2,4"}, "--num-encoder-layers"),
        ({"context_size": 0}, "--context-size"),
    ],
)
def test_bad_flags_name_the_flag(overrides, flag, bpe_file, tmp_path):
    params = _params(bpe_model=bpe_file, exp_dir=tmp_path / "exp", **overrides)
    with pytest.raises((ValueError, FileNotFoundError), match=flag):
        check_training_arguments(params)


def test_missing_bpe_model_and_cuts_are_named(bpe_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="--bpe-model"):
        check_training_arguments(_params(bpe_model=tmp_path / "none.model"))
    params = _params(
        bpe_model=bpe_file,
        manifest_dir=tmp_path,
        cuts_prefix="synth",
        train_splits=["train"],
        valid_splits=["dev"],
    )
    with pytest.raises(FileNotFoundError, match="synth_cuts_train.jsonl.gz"):
        check_training_arguments(params)
    (Path(tmp_path) / "synth_cuts_train.jsonl.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="synth_cuts_dev.jsonl.gz"):
        check_training_arguments(params)


def test_good_flags_pass(bpe_file):
    check_training_arguments(_params(bpe_model=bpe_file))


def test_bf16_autocast_trains_on_cpu():
    model = _model()
    params = _params(use_bf16=True)
    loss, info = compute_loss(params, model, _Tokenizer(), _fixed_batches(1)[0], True)
    assert loss.dtype == torch.float32 and math.isfinite(info["loss"])
    _train(params, model, _fixed_batches(2))
    assert params.batch_idx_train == 2


def test_best_checkpoint_copy_ignores_a_stale_temporary_name(tmp_path):
    from icefall_lite.training import _copy_atomically

    src = tmp_path / "epoch-3.pt"
    src.write_bytes(b"new checkpoint")
    dst = tmp_path / "best-valid-loss.pt"
    dst.write_bytes(b"old checkpoint")
    # Something already holds the name a fixed-name temporary file would use.
    (tmp_path / ".best-valid-loss.pt.tmp").mkdir()
    _copy_atomically(src, dst)
    assert dst.read_bytes() == b"new checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".best-valid-loss.pt.tmp",
        "best-valid-loss.pt",
        "epoch-3.pt",
    ]


def test_rnnt_backend_flag_is_a_training_flag():
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    assert parser.parse_args([]).rnnt_backend == "auto"
    assert parser.parse_args(["--rnnt-backend", "builtin"]).rnnt_backend == "builtin"
    with pytest.raises(SystemExit):
        parser.parse_args(["--rnnt-backend", "warp"])


# ---------------------------------------------------------------- regulariser state on resume


class _WhitenedEncoder(_Encoder):
    """The per-frame MLP followed by a Whiten that always runs at first and never finds a
    violation, so its first backward moves ``prob`` from max_prob (1.0) to min_prob (0.05)."""

    def __init__(self, dim):
        super().__init__(dim)
        self.whiten = Whiten(num_groups=1, whitening_limit=1e9, prob=(0.05, 1.0), grad_scale=0.01)

    def forward(self, x, x_lens, src_key_padding_mask):
        return self.whiten(self.net(x)), x_lens


def _whitened_model() -> AsrModel:
    model = _model()
    model.encoder = _WhitenedEncoder(16)
    return model


def test_training_checkpoint_restores_the_adapted_whiten_prob(tmp_path):
    from icefall_lite.checkpoint import load_checkpoint, read_checkpoint

    torch.manual_seed(0)
    model = _whitened_model()
    params = _params(exp_dir=tmp_path, save_every_n=2)
    _train(params, model, _fixed_batches(2))
    assert model.encoder.whiten.prob == 0.05  # adapted during training

    resumed = _whitened_model()
    assert resumed.encoder.whiten.prob == 1.0
    # The model's state_dict format is untouched: the state lives beside it.
    assert set(read_checkpoint(tmp_path / "checkpoint-2.pt")["model"]) == set(model.state_dict())
    checkpoint = load_checkpoint(tmp_path / "checkpoint-2.pt", model=resumed)
    assert checkpoint["regulariser_states"] == [{"encoder.whiten.prob": 0.05}]
    restore_regulariser_state(resumed, checkpoint, rank=0, world_size=1)
    assert resumed.encoder.whiten.prob == 0.05


def test_epoch_checkpoint_keeps_every_ranks_regulariser_state(tmp_path):
    from icefall_lite.checkpoint import load_checkpoint
    from icefall_lite.training import TrainingState, save_epoch_checkpoint

    model = _whitened_model()
    params = _params(exp_dir=tmp_path, best_train_epoch=0, best_valid_epoch=0)
    per_rank = [{"encoder.whiten.prob": 0.05}, {"encoder.whiten.prob": 0.25}]
    save_epoch_checkpoint(TrainingState(params, model), [{}, {}], per_rank)
    checkpoint = load_checkpoint(tmp_path / "epoch-1.pt", model=_whitened_model())
    for rank in (0, 1):
        resumed = _whitened_model()
        restore_regulariser_state(resumed, checkpoint, rank=rank, world_size=2)
        assert resumed.encoder.whiten.prob == per_rank[rank]["encoder.whiten.prob"]
    # Another world size (allowed with --start-epoch): every rank takes rank 0's state.
    resumed = _whitened_model()
    restore_regulariser_state(resumed, checkpoint, rank=2, world_size=3)
    assert resumed.encoder.whiten.prob == 0.05


def test_checkpoint_without_regulariser_state_keeps_the_defaults(caplog):
    model = _whitened_model()
    with caplog.at_level(logging.INFO):
        restore_regulariser_state(model, {"model": model.state_dict()}, rank=0, world_size=1)
    assert model.encoder.whiten.prob == 1.0
    assert "no regulariser state" in caplog.text and "defaults" in caplog.text
