import io

import pytest

from icefall_lite.scoring import store_transcripts, write_error_stats, write_wer_summary

# Hand-aligned: utt-a deletes the second THE; utt-b substitutes B->X and inserts D;
# utt-c is correct; utt-d substitutes X->P and Y->Q next to each other.
RESULTS = [
    ("utt-a", "THE CAT SAT ON THE MAT".split(), "THE CAT SAT ON MAT".split()),
    ("utt-b", "A B C".split(), "A X C D".split()),
    ("utt-c", "HELLO WORLD".split(), "HELLO WORLD".split()),
    ("utt-d", "X Y Z".split(), "P Q Z".split()),
]


def sections(text):
    """Map each section header word to the lines below it, up to the blank line."""
    out = {}
    current = None
    for line in text.splitlines():
        if line.split(":")[0] in (
            "PER-UTT DETAILS",
            "SUBSTITUTIONS",
            "DELETIONS",
            "INSERTIONS",
            "PER-WORD STATS",
        ):
            current = line.split(":")[0]
            out[current] = []
        elif current and line:
            out[current].append(line)
        elif not line:
            current = None
    return out


def test_write_error_stats_matches_hand_count(tmp_path):
    errs = tmp_path / "errs-test.txt"
    wer = write_error_stats(errs, "test", RESULTS, enable_log=False)
    # 14 reference words; 3 sub + 1 del + 1 ins.
    assert wer == pytest.approx(100 * 5 / 14)
    text = errs.read_text()
    lines = text.splitlines()
    assert lines[0] == "%WER = 35.71"
    assert lines[1] == (
        "Errors: 1 insertions, 1 deletions, 3 substitutions, over 14 reference words (10 correct)"
    )
    sec = sections(text)
    assert sec["PER-UTT DETAILS"] == [
        "utt-a:\tTHE CAT SAT ON (THE->*) MAT",
        "utt-b:\tA (B->X) C (*->D)",
        "utt-c:\tHELLO WORLD",
        "utt-d:\t(X Y->P Q) Z",
    ]
    assert sec["SUBSTITUTIONS"] == ["1   Y -> Q", "1   X -> P", "1   B -> X"]
    assert sec["DELETIONS"] == ["1   THE"]
    assert sec["INSERTIONS"] == ["1   D"]
    per_word = {
        line.split()[0]: [int(n) for n in line.split()[1:]] for line in sec["PER-WORD STATS"]
    }
    # word: corr, tot_errs, count_in_ref, count_in_hyp
    assert per_word["THE"] == [1, 1, 2, 1]
    assert per_word["X"] == [0, 2, 1, 1]  # substituted once as ref, once as hyp
    assert per_word["D"] == [0, 1, 0, 1]
    assert per_word["Z"] == [1, 0, 1, 1]
    assert sec["PER-WORD STATS"][0].startswith("X ")  # most errors first


def test_write_error_stats_to_stream_and_cer():
    stream = io.StringIO()
    cer = write_error_stats(stream, "cer", [("u", ["ab", "c"], ["abd"])], compute_CER=True)
    # chars: ref a b c, hyp a b d -> one substitution over 3
    assert cer == pytest.approx(100 / 3)
    assert stream.getvalue().startswith("%CER = 33.33")


def test_write_error_stats_empty_reference():
    assert write_error_stats(io.StringIO(), "e", [("u", [], [])], enable_log=False) == 0.0
    assert write_error_stats(io.StringIO(), "e", [("u", [], ["A"])], enable_log=False) == float(
        "inf"
    )


def test_store_transcripts_sorted(tmp_path):
    out = tmp_path / "recogs.txt"
    store_transcripts(out, [("b", ["B"], ["BEE"]), ("a", ["A"], ["A"])])
    assert out.read_text().splitlines() == [
        "a:\tref=['A']",
        "a:\thyp=['A']",
        "b:\tref=['B']",
        "b:\thyp=['BEE']",
    ]


def test_write_wer_summary_best_first(tmp_path):
    out = tmp_path / "wer-summary.txt"
    write_wer_summary(out, {"beam_size_4": 5.5, "greedy_search": 6.25, "beam_size_8": 5.125})
    assert out.read_text().splitlines() == [
        "settings\tWER",
        "beam_size_8\t5.12",
        "beam_size_4\t5.50",
        "greedy_search\t6.25",
    ]
