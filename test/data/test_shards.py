"""Lhotse Shar shards (atomic writing, reading in order) and NeMo tarred audio datasets."""

import json
import logging
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet

from icefall_lite.data import check_cut_for_training
from icefall_lite.data.features import compute_fbank_for_cuts
from icefall_lite.data.nemo import ManifestError
from icefall_lite.data.nemo_tarred import expand_braces, nemo_tarred_cuts, write_nemo_tarred
from icefall_lite.data.shar import SHAR_INFO, load_shar_cuts, write_shar


@pytest.fixture(scope="module")
def fbank_cuts(tmp_path_factory, corpus_maker):
    root = tmp_path_factory.mktemp("shar")
    cuts = corpus_maker(root, 5)
    return compute_fbank_for_cuts(cuts, root / "feats", root / "cuts.jsonl.gz", num_jobs=1)


@pytest.mark.parametrize("codec", ["numpy", "lilcom"])
def test_shar_round_trip_keeps_order_and_features(fbank_cuts, tmp_path, codec):
    out = write_shar(fbank_cuts, tmp_path / "synth_train", {"features": codec}, shard_size=2)
    info = json.loads((out / SHAR_INFO).read_text())
    assert info["num_shards"] == 3 and info["num_cuts"] == 5
    cuts = list(load_shar_cuts(out))
    assert [c.id for c in cuts] == [c.id for c in fbank_cuts]
    for a, b in zip(cuts, fbank_cuts):
        assert a.supervisions[0].text == b.supervisions[0].text
        if codec == "numpy":  # lossless: exactly the cut manifest's features
            np.testing.assert_array_equal(a.load_features(), b.load_features())
        else:  # lilcom compresses a second time, within its tick of 2**-5
            np.testing.assert_allclose(a.load_features(), b.load_features(), atol=2**-5)
        assert check_cut_for_training(a, min_duration=0.5)[0] is None  # data in memory is fine
    assert not list(tmp_path.glob("*.partial-*"))


def test_killed_shar_writer_leaves_nothing_that_reads_as_complete(fbank_cuts, tmp_path):
    def dies_midway():
        for index, cut in enumerate(fbank_cuts):
            if index == 3:
                raise KeyboardInterrupt("killed")
            yield cut

    out = tmp_path / "synth_train"
    with pytest.raises(KeyboardInterrupt):
        write_shar(CutSet(_Iterable(dies_midway)), out, shard_size=2)
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match="not found"):
        load_shar_cuts(out)
    # A folder of shards without the marker (a writer killed by SIGKILL before the rename
    # never makes one; a copy cut short might) is refused, not read.
    write_shar(fbank_cuts, out, shard_size=2)
    (out / SHAR_INFO).unlink()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_shar_cuts(out)
    # A stale .partial folder is removed by the next writer.
    stale = tmp_path / "synth_train.partial-1"
    stale.mkdir()
    write_shar(fbank_cuts, out, shard_size=2, overwrite=True)
    assert not stale.exists() and len(list(load_shar_cuts(out))) == 5


class _Iterable:
    """A re-iterable over a generator function (a lazy CutSet's source)."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return self.make()


def test_expand_braces():
    assert expand_braces("a_{0..2}.tar") == ["a_0.tar", "a_1.tar", "a_2.tar"]
    assert expand_braces("s{08..10}/x.tar") == ["s08/x.tar", "s09/x.tar", "s10/x.tar"]
    assert expand_braces("one.tar") == ["one.tar"]


def test_nemo_tarred_reader(tmp_path, corpus_maker):
    cuts = corpus_maker(tmp_path, 5)
    tars = write_nemo_tarred(cuts, tmp_path / "tarred", num_shards=2)
    manifest = tmp_path / "tarred" / "tarred_audio_manifest.json"
    read = list(nemo_tarred_cuts(manifest, str(tmp_path / "tarred" / "audio_{0..1}.tar")))
    # Shard order: shard 0 holds utterances 0, 2, 4, shard 1 holds 1, 3.
    expected = [cuts[i] for i in (0, 2, 4, 1, 3)]
    assert [c.id for c in read] == [c.recording.id for c in expected]
    for a, b in zip(read, expected):
        assert a.supervisions[0].text == b.supervisions[0].text
        assert a.duration == pytest.approx(b.duration)
        np.testing.assert_array_equal(a.load_audio(), b.load_audio())
    assert len(tars) == 2
    with tarfile.open(tars[0]) as tar:
        assert sorted(tar.getnames()) == ["utt000.wav", "utt002.wav", "utt004.wav"]


def test_nemo_tarred_bad_lines_are_skipped_with_line_numbers(tmp_path, caplog, corpus_maker):
    cuts = corpus_maker(tmp_path, 3)
    write_nemo_tarred(cuts, tmp_path / "tarred", num_shards=1)
    manifest = tmp_path / "tarred" / "tarred_audio_manifest.json"
    lines = manifest.read_text().splitlines()
    first = json.loads(lines[0])
    extra = [
        json.dumps({**first, "audio_filepath": "gone.wav"}),  # line 4: not in the tar
        json.dumps({**first, "offset": 50.0}),  # line 5: offset past the end
        json.dumps({**first, "shard_id": 7, "duration": 0.5}),  # line 6: no such shard
        "{not json",  # line 7
        json.dumps({**first, "text": ""}),  # line 8
    ]
    manifest.write_text("\n".join(lines + extra) + "\n")
    with caplog.at_level(logging.WARNING):
        read = list(nemo_tarred_cuts(manifest, [tmp_path / "tarred" / "audio_0.tar"]))
    assert [c.id for c in read] == [c.recording.id for c in cuts]
    for number, reason in [
        (4, "missing file"),
        (5, "offset past end"),
        (6, "bad shard_id"),
        (7, "invalid JSON"),
        (8, "empty text"),
    ]:
        assert f"{manifest}:{number}: {reason}:" in caplog.text
    with pytest.raises(ManifestError, match=f"{manifest}:6: bad shard_id"):
        list(nemo_tarred_cuts(manifest, [tmp_path / "tarred" / "audio_0.tar"], strict=True))


def test_truncated_nemo_tar_does_not_stop_the_epoch(tmp_path, caplog, corpus_maker):
    cuts = corpus_maker(tmp_path, 4)
    (tar_path,) = write_nemo_tarred(cuts, tmp_path / "tarred", num_shards=1)
    manifest = tmp_path / "tarred" / "tarred_audio_manifest.json"
    with tarfile.open(tar_path) as tar:
        second = tar.getmembers()[1]
    with open(tar_path, "r+b") as f:  # cut the shard short inside its second member's data
        f.truncate(second.offset_data + second.size // 2)
    with caplog.at_level(logging.WARNING):
        read = list(nemo_tarred_cuts(manifest, [tar_path]))
    assert [c.id for c in read] == [cuts[0].recording.id]
    assert f"{tar_path}: unreadable after 1 members" in caplog.text
    for number in (2, 3, 4):
        assert f"{manifest}:{number}: missing file:" in caplog.text


_SLOW_WRITER = """
import sys, time
from lhotse import CutSet
from icefall_lite.data.shar import write_shar

def cuts():
    for index, cut in enumerate(CutSet.from_file(sys.argv[1])):
        if index == 3:
            print("stalled", flush=True)
            time.sleep(600)
        yield cut

class Lazy:
    def __iter__(self):
        return cuts()

write_shar(CutSet(Lazy()), sys.argv[2], shard_size=2)
"""


def test_sigkilled_shar_writer_leaves_no_complete_shards(fbank_cuts, tmp_path):
    manifest = tmp_path / "cuts.jsonl.gz"
    fbank_cuts.to_file(manifest)
    out = tmp_path / "synth_train"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    writer = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(manifest), str(out)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert writer.stdout.readline().strip() == "stalled"  # shard 0 written, shard 1 begun
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    (partial,) = tmp_path.glob("synth_train.partial-*")
    assert (partial / "cuts.000000.jsonl.gz").is_file()
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match="not found"):
        load_shar_cuts(out)
    write_shar(fbank_cuts, out, shard_size=2)
    assert not partial.exists() and len(list(load_shar_cuts(out))) == 5
