"""The pseudo-label cache file: round trip, atomic replacement, the previous generation, and
the checks that catch a cut-short, edited or foreign cache."""

import gzip
import os

import pytest

from icefall_lite.ipl import CacheError, PseudoLabel, PseudoLabelCache, previous_path


def _cache(generation: int = 1) -> PseudoLabelCache:
    return PseudoLabelCache(
        {
            "cut-b": PseudoLabel("GOOD MORNING", 0.5, generation),
            "cut-a": PseudoLabel("HÉLLO WORLD", 0.912345678, generation),
        },
        generation,
    )


@pytest.mark.parametrize("name", ["cache.jsonl", "cache.jsonl.gz"])
def test_round_trip_keeps_labels_generation_and_digest(tmp_path, name):
    cache = _cache(3)
    cache.write(tmp_path / name)
    back = PseudoLabelCache.read(tmp_path / name)
    assert back.generation == 3
    assert back.labels["cut-a"] == PseudoLabel("HÉLLO WORLD", 0.912346, 3)  # 6 decimals
    assert back.labels["cut-b"].text == "GOOD MORNING"
    assert back.digest() == PseudoLabelCache.read(tmp_path / name).digest()
    assert back.state() == {"generation": 3, "num_labels": 2, "digest": back.digest()}


def test_same_labels_give_identical_bytes(tmp_path):
    _cache().write(tmp_path / "one.jsonl.gz")
    _cache().write(tmp_path / "two.jsonl.gz")
    assert (tmp_path / "one.jsonl.gz").read_bytes() == (tmp_path / "two.jsonl.gz").read_bytes()


def test_updated_replaces_adds_and_drops_labels():
    cache = _cache(1)
    new = cache.updated(
        {"cut-a": PseudoLabel("HELLO", 0.7, 2), "cut-b": None, "cut-c": PseudoLabel("C", 0.6, 2)}
    )
    assert new.generation == 2
    assert set(new.labels) == {"cut-a", "cut-c"}
    assert new.labels["cut-a"].text == "HELLO"
    assert cache.generation == 1 and set(cache.labels) == {"cut-a", "cut-b"}  # unchanged


def test_a_new_generation_keeps_the_old_file_as_prev(tmp_path):
    path = tmp_path / "cache.jsonl.gz"
    first = _cache(1)
    first.write(path)
    assert not previous_path(path).exists()
    second = first.updated({"cut-a": PseudoLabel("OTHER", 0.8, 2)})
    second.write(path)
    assert PseudoLabelCache.read(path).generation == 2
    prev = PseudoLabelCache.read(previous_path(path))
    assert prev.generation == 1 and prev.digest() == first.digest()


def test_a_failed_write_leaves_the_old_cache_whole_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "cache.jsonl.gz"
    _cache(1).write(path)
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        _cache(1).updated({"cut-z": PseudoLabel("Z", 0.9, 2)}).write(path, keep_previous=False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.jsonl.gz"]


def test_a_cut_short_or_edited_cache_is_refused(tmp_path):
    path = tmp_path / "cache.jsonl"
    _cache(1).write(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # a line lost
    with pytest.raises(CacheError, match="cut short or edited"):
        PseudoLabelCache.read(path)
    path.write_text("\n".join(lines).replace("GOOD MORNING", "GOOD EVENING") + "\n")
    with pytest.raises(CacheError, match="cut short or edited"):
        PseudoLabelCache.read(path)


def test_a_file_that_is_not_a_cache_is_refused(tmp_path):
    (tmp_path / "cuts.jsonl").write_text('{"id": "x", "type": "MonoCut"}\n')
    with pytest.raises(CacheError, match="not an icefall-lite IPL cache"):
        PseudoLabelCache.read(tmp_path / "cuts.jsonl")
    (tmp_path / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"ipl_cache": 1')[:-4])
    with pytest.raises(CacheError, match="unreadable"):
        PseudoLabelCache.read(tmp_path / "broken.jsonl.gz")
    with pytest.raises(FileNotFoundError):
        PseudoLabelCache.read(tmp_path / "missing.jsonl.gz")


def test_a_cache_naming_cuts_that_no_longer_exist_is_a_clear_error(tmp_path):
    cache = _cache(1)
    cache.check_cuts_exist(["cut-a", "cut-b", "cut-c"], tmp_path / "c", "u.jsonl.gz")
    with pytest.raises(CacheError) as error:
        cache.check_cuts_exist(["cut-a", "cut-c"], tmp_path / "c", "u.jsonl.gz")
    message = str(error.value)
    assert "names 1 cut(s) that are not in --ipl-unlabeled-cuts u.jsonl.gz" in message
    assert "cut-b" in message and "\n" not in message
