import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import icefall_lite.checkpoint as ckpt
from icefall_lite.checkpoint import (
    CheckpointError,
    average_checkpoints,
    average_checkpoints_with_averaged_model,
    capture_rng_state,
    find_checkpoints,
    load_averaged_model,
    load_checkpoint,
    read_checkpoint,
    remove_checkpoints,
    resolve_epoch_checkpoints,
    resolve_iter_checkpoints,
    restore_rng_state,
    save_checkpoint,
    save_checkpoint_with_global_batch_idx,
    update_averaged_model,
)
from icefall_lite.utils import AttributeDict


class TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(2)  # has an integer buffer: num_batches_tracked


class OpaqueParams:
    pass


class Unsafe:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        # Unpickling this would create a file: proves no code runs when loading is refused.
        return (Path.touch, (Path(self.marker),))


def test_round_trip_restores_everything(tmp_path):
    model, model_avg = TinyModel(), TinyModel().double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model.norm(model.linear(torch.randn(4, 3))).sum().backward()
    optimizer.step()
    scheduler.step()
    params = AttributeDict(exp_dir=tmp_path / "exp", batch_idx_train=17, average_period=2)

    class FakeSampler:
        def __init__(self, epoch):
            self.epoch = epoch

        def state_dict(self):
            return {"epoch": self.epoch, "seed": 7, "path": Path("/x")}

        def load_state_dict(self, state):
            self.epoch = state["epoch"]

    filename = tmp_path / "epoch-1.pt"
    save_checkpoint(
        filename, model, model_avg, params, optimizer, scheduler, sampler=FakeSampler(3)
    )

    model2, model_avg2 = TinyModel(), TinyModel().double()
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    scheduler2 = torch.optim.lr_scheduler.StepLR(optimizer2, step_size=1, gamma=0.5)
    sampler2 = FakeSampler(0)
    rest = load_checkpoint(
        filename, model2, model_avg2, optimizer2, scheduler2, sampler=sampler2, strict=True
    )
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(model_avg.state_dict().values(), model_avg2.state_dict().values()):
        assert torch.equal(a, b)
    assert optimizer2.state_dict()["state"][0]["step"] == 1
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()
    assert sampler2.epoch == 3
    # params come back as plain types at the top level; consumed components are removed
    assert rest["batch_idx_train"] == 17 and rest["exp_dir"] == str(tmp_path / "exp")
    assert "model" not in rest and "optimizer" not in rest and "sampler" not in rest
    assert "rng_state" in rest


def test_only_rank_zero_writes_and_reserved_keys(tmp_path):
    save_checkpoint(tmp_path / "a.pt", TinyModel(), rank=1)
    assert not (tmp_path / "a.pt").exists()
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "b.pt", TinyModel(), params={"model": 1})


def test_ddp_prefixed_state_loads(tmp_path):
    model = TinyModel()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"model": state}, tmp_path / "ddp.pt")
    fresh = TinyModel()
    load_checkpoint(tmp_path / "ddp.pt", fresh, strict=True)
    assert torch.equal(fresh.linear.weight, model.linear.weight)


@pytest.mark.parametrize("partial", [True, False])
def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch, partial):
    filename = tmp_path / "checkpoint-8.pt"
    old = TinyModel()
    save_checkpoint(filename, old, params={"batch_idx_train": 8})
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        if partial:
            real_save(obj, f, *args, **kwargs)
            f.seek(0)
            f.truncate(100)  # half-written bytes on disk
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(filename, TinyModel(), params={"batch_idx_train": 9})
    monkeypatch.setattr(torch, "save", real_save)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-8.pt"]
    fresh = TinyModel()
    assert load_checkpoint(filename, fresh)["batch_idx_train"] == 8
    assert torch.equal(fresh.linear.weight, old.linear.weight)


def test_refuses_unknown_pickled_class(tmp_path):
    marker = tmp_path / "code-ran"
    filename = tmp_path / "evil.pt"
    torch.save({"model": TinyModel().state_dict(), "payload": Unsafe(str(marker))}, filename)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refusing to load: it contains 'getattr'"):
        load_checkpoint(filename, TinyModel())
    assert not marker.exists()
    opaque = tmp_path / "opaque.pt"
    torch.save({"model": {}, "params": OpaqueParams()}, opaque)
    with pytest.raises(CheckpointError, match=r"opaque\.pt: refusing.*OpaqueParams"):
        read_checkpoint(opaque)


def test_truncated_foreign_and_missing_files_name_the_file(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, TinyModel())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: cannot read checkpoint"):
        read_checkpoint(truncated)
    text = tmp_path / "notes.pt"
    text.write_text("just some text\n")
    with pytest.raises(CheckpointError, match=r"notes\.pt: cannot read checkpoint"):
        read_checkpoint(text)
    with pytest.raises(CheckpointError, match=r"absent\.pt: checkpoint file does not exist"):
        read_checkpoint(tmp_path / "absent.pt")
    not_dict = tmp_path / "list.pt"
    torch.save([1, 2], not_dict)
    with pytest.raises(CheckpointError, match="expected a checkpoint dict"):
        read_checkpoint(not_dict)


def test_average_checkpoints_numerics(tmp_path):
    floats = [torch.randn(4, 3) for _ in range(3)]
    halves = [torch.randn(5).half() for _ in range(3)]
    counts = [torch.tensor([5, -7]), torch.tensor([6, 0]), torch.tensor([8, 1])]
    files = []
    for i in range(3):
        weight = floats[i].clone()
        # "tied" shares storage with "weight": must be counted once and stay tied
        state = {"weight": weight, "tied": weight, "half": halves[i], "count": counts[i]}
        files.append(tmp_path / f"epoch-{i + 1}.pt")
        torch.save({"model": state}, files[-1])

    avg = average_checkpoints(files)
    expected = (floats[0].double() + floats[1].double() + floats[2].double()) / 3
    assert torch.allclose(avg["weight"].double(), expected, atol=1e-6)
    assert avg["tied"].data_ptr() == avg["weight"].data_ptr()
    assert avg["half"].dtype == torch.float16
    expected_half = sum(h.double() for h in halves) / 3
    assert torch.allclose(avg["half"].double(), expected_half, atol=1e-3)
    assert avg["count"].tolist() == [6, -2]  # floor(19/3), floor(-6/3)
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        average_checkpoints([])


def simulate_training(tmp_path, average_period, num_steps, save_at):
    """Pretend to train: after each batch the weights are new random values. Returns the
    weights after every batch (index 0 = initial) and the files saved at ``save_at``."""
    model = TinyModel()
    model_avg = TinyModel().double()
    model_avg.load_state_dict(model.state_dict())
    history = [[p.detach().double().clone() for p in model.parameters()]]
    files = {}
    params = AttributeDict(average_period=average_period, batch_idx_train=0)
    for step in range(1, num_steps + 1):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p))
        model.norm.num_batches_tracked += 1
        params.batch_idx_train = step
        history.append([p.detach().double().clone() for p in model.parameters()])
        if step % average_period == 0:
            update_averaged_model(params, model, model_avg)
        if step in save_at:
            files[step] = tmp_path / f"checkpoint-{step}.pt"
            save_checkpoint(files[step], model, model_avg, params)
    return history, files, model_avg


@pytest.mark.parametrize("average_period,start,end", [(1, 7, 20), (3, 7, 20), (3, 0, 9)])
def test_window_average_equals_brute_force_mean(tmp_path, average_period, start, end):
    history, files, model_avg = simulate_training(
        tmp_path, average_period, num_steps=end, save_at={s for s in (start, end) if s}
    )
    if start == 0:
        files[0] = tmp_path / "checkpoint-0.pt"
        fresh = TinyModel().double()
        fresh.load_state_dict(
            dict(zip([n for n, _ in fresh.named_parameters()], history[0])), strict=False
        )
        save_checkpoint(
            files[0], fresh, fresh, {"average_period": average_period, "batch_idx_train": 0}
        )
    # the averaged model only sees the batches where it was updated
    first = (start // average_period) * average_period + average_period
    last = (end // average_period) * average_period
    sampled = list(range(first, last + 1, average_period))
    brute = [torch.stack([history[s][i] for s in sampled]).mean(0) for i in range(4)]

    avg = average_checkpoints_with_averaged_model(files[start], files[end])
    names = [n for n, _ in TinyModel().named_parameters()]
    for name, expected in zip(names, brute):
        assert torch.allclose(avg[name], expected, atol=1e-10), name
    assert avg["norm.num_batches_tracked"].item() == last  # integer buffer: latest value
    if start == 0:
        # from the very beginning, the window mean is the running average itself
        assert torch.allclose(avg["linear.weight"], model_avg.linear.weight)


def test_window_average_errors(tmp_path):
    _, files, _ = simulate_training(tmp_path, 2, num_steps=6, save_at={5, 6})
    with pytest.raises(CheckpointError, match="must come after"):
        average_checkpoints_with_averaged_model(files[6], files[5])
    with pytest.raises(CheckpointError, match="must come after"):
        average_checkpoints_with_averaged_model(files[5], files[5])
    save_checkpoint(tmp_path / "plain.pt", TinyModel(), params={"batch_idx_train": 3})
    with pytest.raises(
        CheckpointError, match=r"plain\.pt: checkpoint params lack 'average_period'"
    ):
        average_checkpoints_with_averaged_model(tmp_path / "plain.pt", files[6])


def touch_all(directory, names):
    for name in names:
        (directory / name).write_bytes(b"")


def test_find_and_remove_checkpoints(tmp_path):
    touch_all(
        tmp_path,
        [
            "checkpoint-4.pt",
            "checkpoint-12.pt",
            "checkpoint-8.pt",
            "checkpoint-100.pt",
            "epoch-1.pt",
            "checkpoint-x.pt",
        ],
    )
    names = lambda paths: [Path(p).name for p in paths]
    assert names(find_checkpoints(tmp_path)) == [
        "checkpoint-100.pt",
        "checkpoint-12.pt",
        "checkpoint-8.pt",
        "checkpoint-4.pt",
    ]
    assert names(find_checkpoints(tmp_path, iteration=10)) == [
        "checkpoint-100.pt",
        "checkpoint-12.pt",
    ]
    assert names(find_checkpoints(tmp_path, iteration=-12)) == [
        "checkpoint-12.pt",
        "checkpoint-8.pt",
        "checkpoint-4.pt",
    ]
    remove_checkpoints(tmp_path, topk=2, rank=1)
    assert len(find_checkpoints(tmp_path)) == 4
    remove_checkpoints(tmp_path, topk=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-100.pt",
        "checkpoint-12.pt",
        "checkpoint-x.pt",
        "epoch-1.pt",
    ]
    with pytest.raises(ValueError, match="keep-last-k"):
        remove_checkpoints(tmp_path, topk=0)


def test_resolve_epoch_checkpoints(tmp_path):
    touch_all(tmp_path, [f"epoch-{i}.pt" for i in (1, 2, 3, 4)])
    names = lambda paths: [p.name for p in paths]
    assert names(resolve_epoch_checkpoints(tmp_path, 4, 3)) == [
        "epoch-2.pt",
        "epoch-3.pt",
        "epoch-4.pt",
    ]
    assert names(resolve_epoch_checkpoints(tmp_path, 4, 3, use_averaged_model=True)) == [
        "epoch-1.pt",
        "epoch-4.pt",
    ]
    with pytest.raises(CheckpointError, match=r"missing \[6\].*epochs available in .*: 1, 2, 3, 4"):
        resolve_epoch_checkpoints(tmp_path, 6, 1)
    # epoch-0.pt can never exist: say what to do instead (issue #18)
    with pytest.raises(CheckpointError, match=r"epoch-0.pt.*cannot exist: use --avg 3 or less"):
        resolve_epoch_checkpoints(tmp_path, 4, 4, use_averaged_model=True)
    with pytest.raises(CheckpointError, match="no epoch-"):
        resolve_epoch_checkpoints(tmp_path / "empty", 1, 1)


def test_resolve_iter_checkpoints(tmp_path):
    touch_all(tmp_path, [f"checkpoint-{i}.pt" for i in (100, 200, 300, 400)])
    names = lambda paths: [p.name for p in paths]
    assert names(resolve_iter_checkpoints(tmp_path, 300, 2)) == [
        "checkpoint-200.pt",
        "checkpoint-300.pt",
    ]
    assert names(resolve_iter_checkpoints(tmp_path, 300, 2, use_averaged_model=True)) == [
        "checkpoint-100.pt",
        "checkpoint-300.pt",
    ]
    with pytest.raises(CheckpointError, match=r"checkpoint-250\.pt.*100, 200, 300, 400"):
        resolve_iter_checkpoints(tmp_path, 250, 1)
    with pytest.raises(CheckpointError, match="3 older"):
        resolve_iter_checkpoints(tmp_path, 300, 3, use_averaged_model=True)


def test_load_averaged_model_and_global_batch_idx(tmp_path):
    history, files, model_avg = simulate_training(tmp_path, 1, num_steps=6, save_at={2, 4, 6})
    assert save_checkpoint_with_global_batch_idx(tmp_path, 7, TinyModel()).name == "checkpoint-7.pt"
    (tmp_path / "checkpoint-7.pt").unlink()
    model = TinyModel()
    used = load_averaged_model(model, tmp_path, epoch=0, avg=2, iteration=6)
    assert [p.name for p in used] == ["checkpoint-2.pt", "checkpoint-6.pt"]
    expected = torch.stack([history[s][0] for s in (3, 4, 5, 6)]).mean(0)
    assert torch.allclose(model.linear.weight.double(), expected, atol=1e-6)
    load_averaged_model(model, tmp_path, epoch=0, avg=2, iteration=6, use_averaged_model=False)
    expected = (history[4][0] + history[6][0]) / 2
    assert torch.allclose(model.linear.weight.double(), expected, atol=1e-6)


def test_rng_state_round_trip():
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_checkpoint_module_has_no_optional_imports():
    source = Path(ckpt.__file__).read_text()
    assert "import k2" not in source and "fast_rnnt" not in source


def test_lhotse_sampler_and_grad_scaler_survive_safe_loading(tmp_path):
    from lhotse import CutSet
    from lhotse.dataset import SimpleCutSampler
    from lhotse.testing.dummies import DummyManifest

    cuts = DummyManifest(CutSet, begin_id=0, end_id=10)
    sampler = SimpleCutSampler(cuts, max_duration=3.0, shuffle=True)
    sampler.set_epoch(4)
    next(iter(sampler))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    save_checkpoint(tmp_path / "c.pt", TinyModel(), scaler=scaler, sampler=sampler)

    restored_scaler = torch.amp.GradScaler("cpu", init_scale=2.0)
    rest = load_checkpoint(tmp_path / "c.pt", TinyModel(), scaler=restored_scaler)
    assert restored_scaler.get_scale() == 1024.0
    fresh = SimpleCutSampler(cuts, max_duration=3.0, shuffle=True)
    fresh.load_state_dict(rest["sampler"])
    assert fresh.epoch == 4


def test_builtin_subclasses_in_params_load_safely(tmp_path):
    import collections
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    Pair = collections.namedtuple("Pair", "a b")
    params = {
        "torch_version": torch.__version__,  # a TorchVersion, i.e. a str subclass
        "loss": np.float64(0.25),  # a float subclass
        "count": np.int64(5),
        "level": Level.HIGH,
        "pair": Pair(1, Path("/p")),
        "ordered": collections.OrderedDict(x=AttributeDict(y=1)),
        "ids": {7},
        "flag": True,
    }
    save_checkpoint(tmp_path / "p.pt", TinyModel(), params=params)
    rest = read_checkpoint(tmp_path / "p.pt")  # weights_only=True
    assert rest["torch_version"] == str(torch.__version__)
    assert type(rest["torch_version"]) is str
    assert rest["loss"] == 0.25 and type(rest["loss"]) is float
    assert rest["count"] == 5 and type(rest["count"]) is int
    assert rest["level"] == 3 and type(rest["level"]) is int
    assert rest["pair"] == (1, "/p") and type(rest["pair"]) is tuple
    assert rest["ordered"] == {"x": {"y": 1}} and type(rest["ordered"]["x"]) is dict
    assert rest["ids"] == [7]
    assert rest["flag"] is True


def test_disabled_grad_scaler_state_resumes_into_an_enabled_scaler(tmp_path, caplog):
    # A run without --use-fp16 saves a disabled scaler ({}); resuming with --use-fp16 true
    # must start from a fresh scaler instead of failing in GradScaler.load_state_dict.
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    save_checkpoint(tmp_path / "s.pt", TinyModel(), scaler=disabled)
    enabled = torch.amp.GradScaler("cpu", init_scale=8.0)
    with caplog.at_level("INFO"):
        load_checkpoint(tmp_path / "s.pt", TinyModel(), scaler=enabled)
    assert enabled.get_scale() == 8.0
    assert "fresh" in caplog.text
