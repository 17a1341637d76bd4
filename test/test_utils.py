import argparse
import importlib.metadata
import logging
import pickle
from pathlib import Path

import pytest
import torch

from icefall_lite.text import normalize_text, normalize_words, strip_punctuation
from icefall_lite.utils import (
    AttributeDict,
    MetricsTracker,
    atomic_open,
    get_env_info,
    make_pad_mask,
    setup_logger,
    str2bool,
)


def test_attribute_dict_reads_writes_and_pickles():
    params = AttributeDict({"exp_dir": "exp", "lr": 0.045})
    params.num_epochs = 30
    assert params["num_epochs"] == 30 and params.lr == 0.045
    assert not hasattr(params, "missing")
    with pytest.raises(AttributeError, match="missing"):
        params.missing
    del params.lr
    assert "lr" not in params
    assert pickle.loads(pickle.dumps(params)) == params
    assert "exp_dir" in str(params)


@pytest.mark.parametrize(
    "text,expected",
    [("true", True), ("Yes", True), ("1", True), ("false", False), ("n", False), ("0", False)],
)
def test_str2bool_accepts(text, expected):
    assert str2bool(text) is expected


def test_str2bool_rejects_other_words():
    with pytest.raises(argparse.ArgumentTypeError, match="maybe"):
        str2bool("maybe")


def test_make_pad_mask_marks_padding():
    lengths = torch.tensor([1, 3, 2])
    expected = torch.tensor([[False, True, True], [False, False, False], [False, False, True]])
    assert torch.equal(make_pad_mask(lengths), expected)
    wide = make_pad_mask(lengths, max_len=5)
    assert wide.shape == (3, 5) and wide[:, 3:].all()
    # max_len smaller than the longest sequence does not truncate
    assert make_pad_mask(lengths, max_len=2).shape == (3, 3)


def test_make_pad_mask_scripts():
    scripted = torch.jit.script(make_pad_mask)
    lengths = torch.tensor([4, 2])
    assert torch.equal(scripted(lengths), make_pad_mask(lengths))


def test_metrics_tracker_arithmetic_and_normalisation():
    a = MetricsTracker()
    a["frames"] = 100
    a["loss"] = 50.0
    a["utterances"] = 4
    a["utt_duration"] = 8.0
    b = MetricsTracker()
    b["frames"] = 300
    b["loss"] = 30.0
    total = a * 0.5 + b
    assert total["frames"] == 350 and total["loss"] == 55.0
    norm = dict(total.norm_items())
    assert norm == pytest.approx({"loss": 55.0 / 350, "utt_duration": 4.0 / 2})
    assert "frames" not in norm and "utterances" not in norm
    text = str(total)
    assert "loss=0.1571" in text and "350" in text


def test_metrics_tracker_write_summary():
    class Recorder:
        def __init__(self):
            self.calls = []

        def add_scalar(self, tag, value, step):
            self.calls.append((tag, value, step))

    tracker = MetricsTracker()
    tracker["frames"] = 10
    tracker["simple_loss"] = 5.0
    recorder = Recorder()
    tracker.write_summary(recorder, "train/current_", 7)
    assert recorder.calls == [("train/current_simple_loss", 0.5, 7)]


def test_setup_logger_names_file_with_date(tmp_path):
    log_file = setup_logger(tmp_path / "log" / "log-train", use_console=False)
    logging.info("hello from the test")
    for handler in logging.getLogger().handlers:
        handler.flush()
    path = Path(log_file)
    assert path.parent == tmp_path / "log"
    assert path.name.startswith("log-train-20")
    assert "hello from the test" in path.read_text()
    with pytest.raises(ValueError, match="verbose"):
        setup_logger(tmp_path / "log-x", log_level="verbose")
    logging.getLogger().handlers.clear()


def test_atomic_open_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("half of the new cont")
            raise RuntimeError("crash midway")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_open(target) as f:
        f.write("new")
    assert target.read_text() == "new"


def test_get_env_info_reports_versions():
    info = get_env_info()
    assert info["torch_version"] == torch.__version__
    for package in ("k2", "lhotse", "fast_rnnt", "kaldifeat"):
        try:
            expected = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            expected = "not installed"
        assert info[f"{package}_version"] == expected, package
    for key in (
        "lhotse_version",
        "fast_rnnt_version",
        "kaldifeat_version",
        "git_sha1",
        "git_branch",
        "hostname",
        "python_version",
        "torch_cuda_available",
    ):
        assert key in info


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Hello, world!", "HELLO WORLD"),
        ("Don't stop—it's 3.5 miles", "DON'T STOP IT'S 3.5 MILES"),
        ("It costs $1,000 at 10:30.", "IT COSTS $1,000 AT 10:30"),
        ('a well-known  "quote"', "A WELL KNOWN QUOTE"),
        ("James\u2019s 'book'", "JAMES'S BOOK"),
        ("twenty-one 21", "TWENTY ONE 21"),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_words_splits_and_drops():
    assert normalize_words(["hi,", "--", "there."]) == ["HI", "THERE"]
    assert strip_punctuation("end.") == "end"
