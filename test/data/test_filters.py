import logging

import pytest

from icefall_lite.data import conv2d_subsampled_frames, filter_cuts_for_training, load_cut_file
from icefall_lite.data.tokenizer import train_bpe_model


@pytest.fixture(scope="module")
def sp(tmp_path_factory):
    from icefall_lite.data.tokenizer import load_bpe_model

    words = "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE ZERO HELLO WORLD".split()

    root = tmp_path_factory.mktemp("bpe")
    text = root / "text.txt"
    text.write_text("\n".join(" ".join(words[i:] + words[:i]) for i in range(len(words))) + "\n")
    train_bpe_model(text, root / "lang", vocab_size=25)
    return load_bpe_model(root / "lang" / "bpe.model")


def test_conv2d_subsampling_formula():
    assert [conv2d_subsampled_frames(t) for t in (7, 9, 11, 100)] == [0, 1, 1, 23]


def test_bad_cuts_are_dropped_with_counts_and_names(tiny_corpus, sp, caplog):
    cuts = list(load_cut_file(tiny_corpus / "tiny_cuts_train.jsonl.gz"))
    cuts[0].supervisions[0].text = "  "
    cuts[1].supervisions[0].text = "HELLO ÇA VA"  # characters the BPE model never saw
    cuts[2].features.storage_path = str(tiny_corpus / "gone.lca")
    cuts[3].supervisions[0].text = " ".join(["SEVEN"] * 40)  # more tokens than frames
    from lhotse import CutSet

    cut_set = CutSet.from_cuts(cuts)
    with caplog.at_level(logging.INFO):
        kept, report = filter_cuts_for_training(
            cut_set, sp, min_duration=1.2, max_duration=2.8, return_report=True
        )
    too_short = sum(1 for c in cuts[4:] if c.duration < 1.2)
    too_long = sum(1 for c in cuts[4:] if c.duration > 2.8)
    assert report.counts["empty_text"] == 1
    assert report.counts["unencodable"] == 1
    assert report.counts["missing_data"] == 1
    assert report.counts["too_few_frames"] == 1
    assert report.counts["too_short"] == too_short
    assert report.counts["too_long"] == too_long
    kept_ids = [c.id for c in kept]
    assert len(kept_ids) == report.num_kept == len(cuts) - report.num_dropped
    assert cuts[0].id not in kept_ids and cuts[3].id not in kept_ids
    assert cuts[0].id in caplog.text and "too_few_frames" in caplog.text


def test_subsampling_is_a_parameter(tiny_corpus, sp):
    cuts = load_cut_file(tiny_corpus / "tiny_cuts_train.jsonl.gz")
    expected = sum(1 for c in cuts if c.num_frames // 40 < len(sp.encode(c.supervisions[0].text)))
    assert 0 < expected < len(cuts)
    _, report = filter_cuts_for_training(
        cuts,
        sp,
        min_duration=0,
        max_duration=100,
        subsampling=lambda t: t // 40,
        return_report=True,
    )
    assert report.counts == {"too_few_frames": expected}
    with pytest.raises(ValueError, match="every cut was filtered out"):
        filter_cuts_for_training(cuts, sp, min_duration=50, max_duration=100)


def test_unreadable_features_are_caught_when_asked(tiny_corpus, tmp_path):
    cuts = list(load_cut_file(tiny_corpus / "tiny_cuts_train.jsonl.gz"))[:3]
    corrupt = tmp_path / "corrupt.lca"
    corrupt.write_bytes(b"not lilcom")
    cuts[0].features.storage_path = str(corrupt)
    from lhotse import CutSet

    _, report = filter_cuts_for_training(
        CutSet.from_cuts(cuts), min_duration=0, check_readable=True, return_report=True
    )
    assert report.counts == {"unreadable": 1}
