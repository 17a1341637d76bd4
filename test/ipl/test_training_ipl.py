"""Pseudo-labelling inside train.py (in-place mode), resuming with the cache state, the offline
ipl_label.py, DDP labelling, and IPL lowering the loss on the unlabeled part.

Fast: what reaches validation (never a pseudo-label), and the start-up errors. Slow: exact resume
after SIGKILL, resuming from an epoch checkpoint after the next cache was published, DDP on two
CPU ranks (Gloo), the offline script with --ipl-restore, the end-to-end loss test.
"""

import gzip
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ipl_corpus import IPL_LABEL_PY, MICRO_MODEL, TRAIN_PY, env, make_corpus, run, train_cmd
from lhotse import CutSet
from lhotse.utils import fastcopy

from icefall_lite.ipl import PseudoLabel, PseudoLabelCache, previous_path


def _unlabeled(root: Path) -> str:
    return str(root / "data" / "fbank" / "synth_cuts_unlabeled.jsonl.gz")


def _texts(root: Path, split: str) -> dict:
    cuts = CutSet.from_file(root / "data" / "fbank" / f"synth_cuts_{split}.jsonl.gz")
    return {cut.id: cut.supervisions[0].text for cut in cuts}


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _train_in_process(argv, monkeypatch):
    """train.py's main() in this process, recording every batch compute_loss sees."""
    import icefall_lite.training.loop as loop
    import icefall_lite.training.loss as loss

    seen = []
    original = loss.compute_loss

    def spy(params, model, sp, batch, is_training):
        cuts = batch["supervisions"]["cut"]
        seen.append(
            (is_training, params.cur_epoch, [c.id for c in cuts], batch["supervisions"]["text"])
        )
        return original(params, model, sp, batch, is_training)

    monkeypatch.setattr(loss, "compute_loss", spy)
    monkeypatch.setattr(loop, "compute_loss", spy)
    spec = importlib.util.spec_from_file_location("ipl_train_under_test", TRAIN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = module.get_params()
    params.update(vars(module.get_parser().parse_args(argv)))
    from icefall_lite.training import train

    train(params, cuts_prefix="synth", train_splits=["train"], valid_splits=["dev"])
    return seen


def test_pseudo_labels_reach_training_and_never_validation(ipl_corpus, tmp_path, monkeypatch):
    root, hidden = ipl_corpus
    exp_dir = tmp_path / "exp"
    # Labels made offline (short: an untrained model's own labels are too long to train on)
    # for half the unlabeled cuts; passes before epochs 2 and 3 relabel half the cuts each.
    restored = PseudoLabelCache(
        {cut_id: PseudoLabel("ALPHA BRAVO", 0.9, 1) for cut_id in sorted(hidden)[::2]}, 1
    )
    restored.write(exp_dir / "ipl-cache.jsonl.gz")
    flags = ["--ipl-unlabeled-cuts", _unlabeled(root), "--ipl-restore", "1"]
    flags += ["--ipl-n-epochs", "1", "--ipl-p-cache", "0.5"]
    seen = _train_in_process(train_cmd(root, exp_dir, *flags)[2:], monkeypatch)
    dev, train = _texts(root, "dev"), _texts(root, "train")
    valid = [(ids, texts) for is_training, _, ids, texts in seen if not is_training]
    assert len(valid) >= 3, "no validation batch seen"
    for ids, texts in valid:
        assert all(cut_id in dev for cut_id in ids)
        assert texts == [dev[cut_id] for cut_id in ids]  # the real transcripts
    final = PseudoLabelCache.read(exp_dir / "ipl-cache.jsonl.gz")
    assert final.generation == 3  # passes before epochs 2 and 3
    by_epoch = {
        1: restored,
        2: PseudoLabelCache.read(previous_path(exp_dir / "ipl-cache.jsonl.gz")),
        3: final,
    }
    pseudo_seen = {1: 0, 2: 0, 3: 0}
    for is_training, epoch, ids, texts in seen:
        if not is_training:
            continue
        for cut_id, text in zip(ids, texts):
            assert cut_id in train or cut_id in hidden
            if cut_id in train:
                assert text == train[cut_id]
            else:
                assert text == by_epoch[epoch].labels[cut_id].text
                pseudo_seen[epoch] += 1
    assert all(count > 0 for count in pseudo_seen.values()), pseudo_seen
    checkpoint = _load(exp_dir / "epoch-3.pt")
    assert checkpoint["ipl_state"]["generation"] == 3
    assert checkpoint["ipl_state"]["digest"] == final.digest()
    assert set(checkpoint["ipl_state"]["valid_losses"]) == {"1", "2", "3"}


def _one_line_error(result: subprocess.CompletedProcess, after_logging: bool = False) -> str:
    """The error line of a failed script: its only stderr line, or (an error found by the
    rank, once logging started) its last one, with no traceback before it."""
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    if not after_logging:
        assert len(lines) == 1, result.stderr[-2000:]
    assert lines[-1].startswith(("train.py: error: ", "ipl_label.py: error: ")), lines[-1]
    return lines[-1]


def test_start_up_errors_are_one_line(ipl_corpus, tmp_path):
    root, _ = ipl_corpus
    exp_dir = tmp_path / "exp"
    # A cache naming a cut that no longer exists, restored: refused before any training.
    cache = exp_dir / "ipl-cache.jsonl.gz"
    PseudoLabelCache({"gone-cut": PseudoLabel("ALPHA", 0.9, 1)}, 1).write(cache)
    unlabeled = ["--ipl-unlabeled-cuts", _unlabeled(root)]
    result = run(train_cmd(root, exp_dir, *unlabeled, "--ipl-restore", "1"), root, check=False)
    line = _one_line_error(result, after_logging=True)
    assert "names 1 cut(s) that are not in --ipl-unlabeled-cuts" in line and "gone-cut" in line
    assert not (exp_dir / "epoch-1.pt").exists()
    # Validation cuts given as unlabeled audio: refused.
    dev = str(root / "data" / "fbank" / "synth_cuts_dev.jsonl.gz")
    result = run(train_cmd(root, exp_dir, "--ipl-unlabeled-cuts", dev), root, check=False)
    assert "shares 6 cut(s) with the validation cuts" in _one_line_error(result, True)
    # Bad flags: refused before the rank processes start.
    result = run(train_cmd(root, exp_dir, *unlabeled, "--ipl-p-cache", "1.5"), root, check=False)
    assert _one_line_error(result) == "train.py: error: --ipl-p-cache must be in [0, 1], got 1.5"
    result = run(
        train_cmd(
            root,
            exp_dir,
            *unlabeled,
            "--use-ctc",
            "0",
            "--ipl-decoding-method",
            "ctc_greedy_search",
        ),
        root,
        check=False,
    )
    assert "needs a CTC head" in _one_line_error(result)
    result = run(
        train_cmd(root, tmp_path / "other", *unlabeled, "--ipl-restore", "1"), root, check=False
    )
    assert "--ipl-restore: the cache" in _one_line_error(result)


# ---------------------------------------------------------------------------------- slow
def _same_weights(a: dict, b: dict) -> None:
    assert a["batch_idx_train"] == b["batch_idx_train"]
    for key in ("model", "model_avg"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"


@pytest.mark.slow
def test_resume_after_sigkill_restores_the_cache_state_exactly(ipl_corpus, tmp_path):
    root, _ = ipl_corpus
    flags = ["--ipl-unlabeled-cuts", _unlabeled(root), "--ipl-p-cache", "0.5"]
    full_dir = tmp_path / "full"
    run(train_cmd(root, full_dir, *flags), root)
    full = _load(full_dir / "epoch-3.pt")
    full_cache = (full_dir / "ipl-cache.jsonl.gz").read_bytes()
    # A checkpoint inside epoch 3 (after the second labelling pass).
    in_epoch_3 = sorted(
        int(p.stem.split("-")[1])
        for p in full_dir.glob("checkpoint-*.pt")
        if _load(p)["cur_epoch"] == 3
    )
    assert in_epoch_3, "no mid-epoch checkpoint in epoch 3: make the corpus larger"

    # SIGKILL a second run as soon as it has written that checkpoint ...
    broken_dir = tmp_path / "broken"
    process = subprocess.Popen(
        train_cmd(root, broken_dir, *flags),
        cwd=root,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = broken_dir / f"checkpoint-{in_epoch_3[0]}.pt"
    deadline = time.time() + 600
    while not target.exists() and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (broken_dir / "epoch-3.pt").exists()
    last = max(int(p.stem.split("-")[1]) for p in broken_dir.glob("checkpoint-*.pt"))
    # ... damage the cache file as a careless user might (it is restored from the checkpoint's
    # generation, kept as the .prev copy or the file itself) ...
    cache_path = broken_dir / "ipl-cache.jsonl.gz"
    PseudoLabelCache.read(cache_path).write(previous_path(cache_path), keep_previous=False)
    # ... and resume: same weights, same cache bytes as the unbroken run.
    resumed = run(train_cmd(root, broken_dir, *flags, "--start-batch", str(last)), root)
    assert "IPL: resuming with generation 2" in resumed.stderr
    assert "labelling pass 3" not in resumed.stderr
    _same_weights(full, _load(broken_dir / "epoch-3.pt"))
    assert cache_path.read_bytes() == full_cache


@pytest.mark.slow
def test_resume_from_an_epoch_checkpoint_after_the_next_cache_was_published(ipl_corpus, tmp_path):
    """Killed after the labelling pass before epoch 3 wrote the cache, before any checkpoint
    of epoch 3: resuming from epoch-2.pt takes generation 1 back from the .prev copy and makes
    generation 2 again, identically."""
    root, _ = ipl_corpus
    flags = [
        "--ipl-unlabeled-cuts",
        _unlabeled(root),
        "--ipl-p-cache",
        "0.5",
        "--save-every-n",
        "0",
    ]
    full_dir = tmp_path / "full"
    run(train_cmd(root, full_dir, *flags), root)
    epoch_dir = tmp_path / "from-epoch"
    epoch_dir.mkdir()
    for name in ("epoch-1.pt", "epoch-2.pt", "ipl-cache.jsonl.gz", "ipl-cache.prev.jsonl.gz"):
        (epoch_dir / name).write_bytes((full_dir / name).read_bytes())
    resumed = run(train_cmd(root, epoch_dir, *flags, "--start-epoch", "3"), root)
    assert "restoring" in resumed.stderr and "to generation 1" in resumed.stderr
    assert "labelling pass 2 before epoch 3" in resumed.stderr
    _same_weights(_load(full_dir / "epoch-3.pt"), _load(epoch_dir / "epoch-3.pt"))
    full_cache = (full_dir / "ipl-cache.jsonl.gz").read_bytes()
    assert (epoch_dir / "ipl-cache.jsonl.gz").read_bytes() == full_cache
    # Neither file holds the checkpoint's generation: a clear error, not a silent relabel.
    (epoch_dir / "ipl-cache.prev.jsonl.gz").unlink()
    PseudoLabelCache({}, 7).write(epoch_dir / "ipl-cache.jsonl.gz", keep_previous=False)
    result = run(train_cmd(root, epoch_dir, *flags, "--start-epoch", "3"), root, check=False)
    assert result.returncode == 1
    assert "trained with pseudo-label generation 1, which is neither in" in result.stderr


def _ddp_label(rank: int, world_size: int, root: str, out: str, port: int) -> None:
    import argparse

    import torch.distributed as dist

    from icefall_lite.data import AsrDataModule, load_bpe_model
    from icefall_lite.models import add_model_arguments, build_model
    from icefall_lite.training import TrainingState, add_training_arguments, get_training_params
    from icefall_lite.training.ipl import start_ipl

    torch.set_num_threads(1)
    if world_size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
    root = Path(root)
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    add_model_arguments(parser)
    AsrDataModule.add_arguments(parser)
    params = get_training_params()
    argv = MICRO_MODEL + ["--exp-dir", out, "--ipl-unlabeled-cuts", _unlabeled(root)]
    # One cut per batch: a cut's label then does not depend on which cuts share its batch
    # (padding changes an untrained model's outputs slightly), only on the sharing of work.
    params.update(vars(parser.parse_args(argv + ["--ipl-batch-duration", "0.01"])))
    sp = load_bpe_model(root / "data" / "lang_bpe_20" / "bpe.model")
    params.update(vocab_size=sp.get_piece_size(), blank_id=0)
    torch.manual_seed(0)
    model = build_model(params)
    state = TrainingState(params=params, model=model, sp=sp, rank=rank, world_size=world_size)
    fbank = root / "data" / "fbank"
    ipl = start_ipl(
        state,
        None,
        CutSet.from_file(fbank / "synth_cuts_train.jsonl.gz"),
        CutSet.from_file(fbank / "synth_cuts_dev.jsonl.gz"),
    )
    outcome = ipl.label(epoch=2)
    Path(out, f"rank-{rank}.json").write_text(json.dumps(dict(outcome.counts)))
    if world_size > 1:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_labelling_on_two_cpu_ranks_equals_one_process(ipl_corpus, tmp_path):
    import torch.multiprocessing as mp

    root, hidden = ipl_corpus
    single, double = tmp_path / "one", tmp_path / "two"
    single.mkdir(), double.mkdir()
    _ddp_label(0, 1, str(root), str(single), 0)
    port = 14000 + os.getpid() % 1000
    mp.spawn(_ddp_label, args=(2, str(root), str(double), port), nprocs=2, join=True)
    one = PseudoLabelCache.read(single / "ipl-cache.jsonl.gz")
    two = PseudoLabelCache.read(double / "ipl-cache.jsonl.gz")
    assert len(one) > 0 and two.generation == one.generation == 1
    assert two.digest() == one.digest()  # same labels, however the cuts were shared out
    counts = [json.loads((double / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert counts[0] == counts[1]  # every rank knows the whole pass's outcome
    assert sum(counts[0].values()) == len(hidden)


@pytest.mark.slow
def test_offline_labelling_then_training_picks_the_cache_up(ipl_corpus, tmp_path):
    root, hidden = ipl_corpus
    exp_dir = tmp_path / "exp"
    run(train_cmd(root, exp_dir, "--num-epochs", "2"), root)
    cache = exp_dir / "ipl-cache.jsonl.gz"
    label = [
        sys.executable, str(IPL_LABEL_PY), "--exp-dir", str(exp_dir),
        "--bpe-model", str(root / "data" / "lang_bpe_20" / "bpe.model"),
        "--ipl-unlabeled-cuts", _unlabeled(root), "--ipl-cache", str(cache),
        "--ipl-decoding-method", "ctc_greedy_search",
    ]  # fmt: skip
    result = run(label + ["--ipl-average", "2"], root)
    assert "Labelling with the average of ['epoch-" in result.stderr
    first = PseudoLabelCache.read(cache)
    assert first.generation == 1
    assert len(first) + sum(
        1 for line in result.stderr.splitlines() if "cannot label" in line
    ) <= len(hidden)
    # A second pass refreshes a fraction with --epoch/--avg (as decode.py selects).
    run(label + ["--epoch", "2", "--avg", "1", "--ipl-p-cache", "0.25"], root)
    second = PseudoLabelCache.read(cache)
    assert second.generation == 2
    refreshed = [i for i, label in second.labels.items() if label.generation == 2]
    assert 0 < len(refreshed) <= 4  # round(0.25 * 16)
    # Training resumes and trains on the cache as it is (no in-place pass with p 0).
    trained = run(
        train_cmd(
            root, exp_dir, "--start-epoch", "3", "--ipl-restore", "1",
            "--ipl-unlabeled-cuts", _unlabeled(root), "--ipl-cache", str(cache),
            "--ipl-p-cache", "0", "--ipl-n-epochs", "0",
        ),
        root,
    )  # fmt: skip
    assert "--ipl-restore: generation 2" in trained.stderr
    assert "labelling pass" not in trained.stderr
    assert _load(exp_dir / "epoch-3.pt")["ipl_state"]["digest"] == second.digest()
    with gzip.open(cache, "rt") as f:
        assert json.loads(f.readline())["generation"] == 2  # untouched
    # A bad flag of the offline script is one line.
    result = run(label + ["--ipl-p-cache", "-1"], root, check=False)
    assert (
        _one_line_error(result) == "ipl_label.py: error: --ipl-p-cache must be in [0, 1], got -1.0"
    )


def _unlabeled_loss(root: Path, checkpoint_file: Path, hidden: dict) -> float:
    """Loss per frame of a model on the unlabeled cuts with their real transcripts."""
    from icefall_lite.checkpoint import stored_params
    from icefall_lite.data import AsrDataModule, load_bpe_model
    from icefall_lite.models import build_model
    from icefall_lite.training import compute_validation_loss
    from icefall_lite.utils import AttributeDict

    checkpoint = _load(checkpoint_file)
    params = AttributeDict(stored_params(checkpoint))
    params.update(best_valid_loss=float("inf"), cur_epoch=0, manifest_dir=root / "data" / "fbank")
    model = build_model(params)
    model.load_state_dict(checkpoint["model"])
    sp = load_bpe_model(root / "data" / "lang_bpe_20" / "bpe.model")
    cuts = CutSet.from_cuts(
        fastcopy(c, supervisions=[fastcopy(c.supervisions[0], text=hidden[c.id])])
        for c in CutSet.from_file(_unlabeled(root))
    )
    loader = AsrDataModule(params).valid_dataloaders(cuts)
    info = compute_validation_loss(params, model, sp, loader)
    return info["loss"] / info["frames"]


@pytest.mark.slow
def test_ipl_lowers_the_loss_on_the_unlabeled_part(tmp_path):
    """The same 16 epochs on 40 labelled cuts, with and without 80 unlabeled ones (labelled from
    epoch 9 on, half relabelled each epoch, by the average of the 2 best epochs): the loss on
    the unlabeled cuts, scored with their hidden transcripts, is lower with IPL.

    Not met yet (issue #15), so the claim ends in ``pytest.xfail`` with the measured numbers;
    everything before it (both runs, the labelling passes, a non-empty cache of real labels)
    must work, and a broken pipeline fails the test. On 2026-12-01: 1.333 with IPL vs 1.382
    without, labels at 100 % WER (8 epochs of 6 steps are too few for useful labels). On
    2026-12-03, six variants with ~40 steps per epoch and the Zipformer schedules compressed
    (``--ref-duration 0.1``) gave labels at 24-40 % WER (word boundaries dropped: "BRAVOCHARLIE")
    and IPL below the supervised loss in only one, where the supervised run over-fitted."""
    root, hidden = make_corpus(tmp_path / "corpus", 40, 80, 6)
    common = ["--num-epochs", "16", "--max-duration", "8", "--save-every-n", "0"]
    run(train_cmd(root, tmp_path / "sup", *common), root)
    ipl = [
        "--ipl-unlabeled-cuts", _unlabeled(root), "--ipl-n-epochs", "8", "--ipl-p-cache", "0.5",
        "--ipl-average", "2", "--ipl-decoding-method", "ctc_greedy_search",
    ]  # fmt: skip
    result = run(train_cmd(root, tmp_path / "ipl", *common, *ipl), root)
    assert "labelling pass 8 before epoch 16" in result.stderr
    cache = PseudoLabelCache.read(tmp_path / "ipl" / "ipl-cache.jsonl.gz")
    pairs = [(hidden[i].split(), label.text.split()) for i, label in cache.labels.items()]
    from icefall_lite.scoring import word_error_rate

    supervised = _unlabeled_loss(root, tmp_path / "sup" / "epoch-16.pt", hidden)
    with_ipl = _unlabeled_loss(root, tmp_path / "ipl" / "epoch-16.pt", hidden)
    print(
        f"loss on the unlabeled cuts: supervised {supervised:.4f}, IPL {with_ipl:.4f}; "
        f"{len(cache)} labels, WER {word_error_rate(pairs):.1f} %"
    )
    assert len(cache) > 0 and all(label.text for label in cache.labels.values())
    if not with_ipl < 0.9 * supervised:
        pytest.xfail(
            f"IPL does not lower the unlabeled loss by 10 % yet: {with_ipl:.4f} vs {supervised:.4f}"
            f" supervised, labels at {word_error_rate(pairs):.1f} % WER"
        )
