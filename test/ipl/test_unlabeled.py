"""The unlabeled set: Lhotse cuts, NeMo JSON manifests without text, NeMo tarred shards; and
the one place that puts pseudo-labels on cuts."""

import json

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet
from lhotse.utils import fastcopy

from icefall_lite.data.nemo import ManifestReport, nemo_to_cuts, read_nemo_manifest
from icefall_lite.errors import UsageError
from icefall_lite.ipl import PseudoLabel, PseudoLabelCache, load_unlabeled_cuts, with_pseudo_labels


def _wavs(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"u{i}.wav"
        sf.write(str(path), (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        paths.append(path)
    return paths


def test_pseudo_labels_replace_the_text_of_labelled_cuts_only(ipl_corpus):
    root, hidden = ipl_corpus
    cuts = load_unlabeled_cuts(root / "data" / "fbank" / "synth_cuts_unlabeled.jsonl.gz")
    ids = [cut.id for cut in cuts]
    assert all(cut.supervisions[0].text == "" for cut in cuts)  # the transcripts are hidden
    cache = PseudoLabelCache(
        {ids[0]: PseudoLabel("ALPHA BRAVO", 0.9, 1), ids[3]: PseudoLabel("ECHO", 0.8, 1)}, 1
    )
    labelled = list(with_pseudo_labels(cuts, cache))
    assert [cut.id for cut in labelled] == [ids[0], ids[3]]
    assert [cut.supervisions[0].text for cut in labelled] == ["ALPHA BRAVO", "ECHO"]
    for cut in labelled:
        (supervision,) = cut.supervisions
        assert supervision.start == 0 and supervision.duration == cut.duration
        assert supervision.custom == {"pseudo_label": True}
        assert cut.has_features
    bare = fastcopy(next(iter(cuts)), supervisions=[])  # unlabeled cuts may have none
    (one,) = with_pseudo_labels(CutSet.from_cuts([bare]), cache)
    assert one.supervisions[0].text == "ALPHA BRAVO"


def test_a_nemo_manifest_without_text_is_unlabeled_audio(tmp_path):
    paths = _wavs(tmp_path / "wav", 3)
    manifest = tmp_path / "unlabeled.json"
    lines = [
        {"audio_filepath": f"wav/{paths[0].name}", "duration": 1.0},
        {"audio_filepath": f"wav/{paths[1].name}", "duration": 1.0, "text": ""},
        {"audio_filepath": f"wav/{paths[2].name}", "duration": 1.0, "text": "KNOWN"},
    ]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    cuts = list(load_unlabeled_cuts(manifest))
    assert len(cuts) == 3 and [c.supervisions[0].text for c in cuts] == ["", "", "KNOWN"]
    assert not cuts[0].has_features and cuts[0].has_recording
    # Labelled data keeps refusing entries without text.
    report = ManifestReport(str(manifest))
    assert len(list(read_nemo_manifest(manifest, report=report))) == 1
    assert len(nemo_to_cuts(manifest)) == 1


def test_nemo_tarred_unlabeled_audio(tmp_path):
    from icefall_lite.data.nemo_tarred import write_nemo_tarred

    paths = _wavs(tmp_path / "wav", 4)
    manifest = tmp_path / "m.json"
    manifest.write_text(
        "".join(json.dumps({"audio_filepath": str(p), "duration": 1.0}) + "\n" for p in paths)
    )
    source = load_unlabeled_cuts(manifest)
    tars = write_nemo_tarred(
        [fastcopy(c, supervisions=[fastcopy(c.supervisions[0], text="")]) for c in source],
        tmp_path / "tarred",
        num_shards=2,
    )
    cuts = list(
        load_unlabeled_cuts(
            tmp_path / "tarred" / "tarred_audio_manifest.json",
            tarred_audio=str(tmp_path / "tarred" / "audio_{0..1}.tar"),
        )
    )
    assert len(tars) == 2 and len(cuts) == 4
    assert all(cut.load_audio().shape[-1] == 16000 for cut in cuts)


def test_an_unknown_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "y.jsonl"
    bad.write_text("42\n")
    with pytest.raises(UsageError, match="expected Lhotse cuts or a NeMo JSON manifest"):
        load_unlabeled_cuts(bad)
    with pytest.raises(FileNotFoundError, match="--ipl-unlabeled-cuts"):
        load_unlabeled_cuts(tmp_path / "missing.jsonl.gz")
