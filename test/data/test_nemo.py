"""NeMo / Myrtle JSON manifests <-> Lhotse: both directions, round trips, every bad line."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from icefall_lite.data.nemo import (
    ManifestError,
    cuts_to_nemo,
    manifests_to_nemo,
    nemo_to_cuts,
    nemo_to_manifests,
    read_nemo_manifest,
)

SR = 16000


def _wav(path: Path, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    samples = (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, SR, subtype="FLOAT")
    return samples


def _write_lines(path: Path, lines) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


@pytest.fixture
def data(tmp_path):
    """manifests/ with a relative-path manifest; audio in audio/ (one long file, two short)."""
    long = _wav(tmp_path / "audio" / "long.wav", 3.0, seed=1)
    _wav(tmp_path / "audio" / "a.wav", 1.0, seed=2)
    _wav(tmp_path / "audio" / "sub" / "b.wav", 1.5, seed=3)
    lines = [
        {"audio_filepath": "audio/a.wav", "duration": 1.0, "text": "hello world"},
        {"audio_filepath": "audio/sub/b.wav", "duration": 1.5, "text": "b", "speaker": "s1"},
        {
            "audio_filepath": "audio/long.wav",
            "offset": 0.5,
            "duration": 1.0,
            "text": "one",
            "lang": "en",
            "snr": 12.5,
        },
        {"audio_filepath": "audio/long.wav", "offset": 2.0, "duration": 1.0, "text": "two"},
    ]
    manifest = _write_lines(tmp_path / "train.json", lines)
    return tmp_path, manifest, lines, long


def _read_lines(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_nemo_to_cuts_resolves_paths_and_honours_offsets(data):
    root, manifest, lines, long = data
    cuts = nemo_to_cuts(manifest)
    assert len(cuts) == 4
    by_text = {cut.supervisions[0].text: cut for cut in cuts}
    assert by_text["hello world"].recording.sources[0].source == str(root / "audio" / "a.wav")
    one, two = by_text["one"], by_text["two"]
    assert one.start == 0.5 and one.duration == 1.0 and one.recording.id == two.recording.id
    assert one.supervisions[0].start == 0.0 and one.supervisions[0].duration == 1.0
    np.testing.assert_allclose(one.load_audio()[0], long[8000:24000], atol=1e-6)
    np.testing.assert_allclose(two.load_audio()[0], long[32000:48000], atol=1e-6)
    assert one.supervisions[0].language == "en"
    assert one.supervisions[0].custom == {"snr": 12.5}
    assert by_text["b"].supervisions[0].speaker == "s1"
    assert len({cut.id for cut in cuts}) == 4


def test_round_trip_nemo_cuts_nemo(data):
    root, manifest, lines, _ = data
    out = root / "out.json"
    assert cuts_to_nemo(nemo_to_cuts(manifest), out) == 4
    assert _read_lines(out) == lines  # relative paths, offsets, extra keys all as they were


def test_round_trip_nemo_manifests_nemo(data):
    root, manifest, lines, _ = data
    recordings, supervisions = nemo_to_manifests(manifest)
    assert len(recordings) == 3 and len(supervisions) == 4
    out = root / "out.json"
    manifests_to_nemo(recordings, supervisions, out)
    assert _read_lines(out) == lines


def test_round_trip_cuts_nemo_cuts(data, tmp_path):
    root, manifest, _, _ = data
    cuts = nemo_to_cuts(manifest)
    path = root / "again.json"
    cuts_to_nemo(cuts, path)
    again = nemo_to_cuts(path)
    assert [c.to_dict() for c in again] == [c.to_dict() for c in cuts]
    # Written elsewhere: absolute paths, read back to the same cuts.
    other = tmp_path / "elsewhere" / "m.json"
    cuts_to_nemo(cuts, other)
    assert all(Path(line["audio_filepath"]).is_absolute() for line in _read_lines(other))
    assert [c.to_dict() for c in nemo_to_cuts(other, data_dir=root)] == [c.to_dict() for c in cuts]


def test_cuts_from_other_recipes_convert(tmp_path, corpus_maker):
    cuts = corpus_maker(tmp_path, 3)
    path = tmp_path / "m.json"
    cuts_to_nemo(cuts, path)
    back = nemo_to_cuts(path)
    assert [(c.recording.sources[0].source, c.duration, c.supervisions[0].text) for c in back] == [
        (c.recording.sources[0].source, c.duration, c.supervisions[0].text) for c in cuts
    ]


BAD_LINES = {
    "missing file": {"audio_filepath": "audio/nope.wav", "duration": 1.0, "text": "x"},
    "bad duration": {"audio_filepath": "audio/a.wav", "duration": 0, "text": "x"},
    "negative duration": {"audio_filepath": "audio/a.wav", "duration": -1.0, "text": "x"},
    "offset past end": {
        "audio_filepath": "audio/a.wav",
        "offset": 1.2,
        "duration": 0.5,
        "text": "x",
    },
    "segment past end": {
        "audio_filepath": "audio/a.wav",
        "offset": 0.5,
        "duration": 1.0,
        "text": "x",
    },
    "empty text": {"audio_filepath": "audio/a.wav", "duration": 1.0, "text": "  "},
    "invalid JSON": '{"audio_filepath": "audio/a.wav", "duration": 1.0, "text": ',
    "no audio_filepath": {"duration": 1.0, "text": "x"},
}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_bad_line_is_reported_with_its_number_and_skipped(data, kind, caplog):
    root, _, lines, _ = data
    bad = BAD_LINES[kind]
    manifest = _write_lines(root / "bad.json", [lines[0], lines[1], bad, lines[3]])
    reason = "bad duration" if kind == "negative duration" else kind
    with caplog.at_level(logging.WARNING):
        cuts = nemo_to_cuts(manifest)
    assert [c.supervisions[0].text for c in cuts] == ["hello world", "b", "two"]
    assert f"{manifest}:3: {reason}:" in caplog.text
    with pytest.raises(ManifestError, match=f"{manifest}:3: {reason}:"):
        nemo_to_cuts(manifest, strict=True)


def test_blank_lines_and_duplicates(data, caplog):
    root, _, lines, _ = data
    manifest = _write_lines(root / "dup.json", [lines[0], "", lines[0]])
    with caplog.at_level(logging.WARNING):
        assert len(nemo_to_cuts(manifest)) == 1
    assert f"{manifest}:3: duplicate:" in caplog.text


def test_myrtle_json_array(tmp_path):
    _wav(tmp_path / "wav" / "a.wav", 1.0)
    _wav(tmp_path / "wav" / "b.wav", 0.5)
    entries = [
        {
            "transcript": "first one",
            "files": [{"fname": "wav/a.wav", "duration": 1.0}],
            "original_duration": 1.0,
        },
        {"transcript": "second", "files": [{"fname": "wav/b.wav"}], "original_duration": 0.5},
        {"transcript": "", "files": [{"fname": "wav/b.wav"}], "original_duration": 0.5},
    ]
    manifest = tmp_path / "myrtle.json"
    manifest.write_text(json.dumps(entries, indent=2))
    entries_read = list(read_nemo_manifest(manifest))
    assert [(e.line, e.text, e.duration) for e in entries_read] == [
        (1, "first one", 1.0),
        (2, "second", 0.5),
    ]
    cuts = nemo_to_cuts(manifest)
    assert isinstance(cuts, CutSet) and len(cuts) == 2
