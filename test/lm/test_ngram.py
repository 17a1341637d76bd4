"""ARPA reading and scoring, the modified Kneser-Ney trainer (by hand on a tiny text), KenLM
agreement, and the one-line errors."""

import math

import pytest

from icefall_lite.lm import (
    ArpaError,
    LmVocabularyError,
    NgramLm,
    TokenNgramLm,
    estimate_discounts,
    load_token_lm,
    read_arpa,
    train_kneser_ney,
    write_arpa,
)

D = (0.5, 1.0, 1.5)


@pytest.fixture
def bigram(tmp_path):
    """Sentences "a b" and "a", bigram, discounts fixed at 0.5 / 1.0 / 1.5."""
    entries = train_kneser_ney([["a", "b"], ["a"]], order=2, discounts={1: D, 2: D})
    return write_arpa(entries, tmp_path / "lm.arpa")


def test_kneser_ney_by_hand(bigram):
    # Continuation counts: a 1 (after <s>), b 1 (after a), </s> 2 (after a, b); total 4.
    # Unigram gamma = (0.5 * 2 + 1.0 * 1) / 4 = 0.5, spread over |V| = 4 (a b </s> <unk>):
    #   p(a) = p(b) = 0.5 / 4 + 0.125 = 0.25, p(</s>) = 1 / 4 + 0.125 = 0.375, p(<unk>) = 0.125.
    # Bigrams (raw counts): after <s>: a x2 -> gamma 1.0 * 1 / 2 = 0.5,
    #   p(a | <s>) = (2 - 1) / 2 + 0.5 * 0.25 = 0.625;
    # after a: b x1, </s> x1 -> gamma 0.5 * 2 / 2 = 0.5,
    #   p(b | a) = 0.5 / 2 + 0.5 * 0.25 = 0.375, p(</s> | a) = 0.25 + 0.5 * 0.375 = 0.4375;
    # after b: </s> x1 -> gamma 0.5, p(</s> | b) = 0.5 + 0.5 * 0.375 = 0.6875.
    lm = read_arpa(bigram)
    i = lm.ids
    expect = {
        (i["a"],): 0.25, (i["b"],): 0.25, (i["</s>"],): 0.375, (i["<unk>"],): 0.125,
        (i["<s>"], i["a"]): 0.625, (i["a"], i["b"]): 0.375, (i["a"], i["</s>"]): 0.4375,
        (i["b"], i["</s>"]): 0.6875,
    }  # fmt: skip
    for gram, p in expect.items():
        assert 10 ** lm.grams[gram][0] == pytest.approx(p, abs=1e-5), gram
    assert 10 ** lm.grams[(i["a"],)][1] == pytest.approx(0.5, abs=1e-5)  # backoff = gamma(a)
    # Unseen bigrams back off: p(a | a) = 0.5 * 0.25, p(<unk> | b) = 0.5 * 0.125.
    assert 10 ** lm.log10_prob((i["a"],), i["a"]) == pytest.approx(0.125, abs=1e-5)
    assert 10 ** lm.log10_prob((i["b"],), i["<unk>"]) == pytest.approx(0.0625, abs=1e-5)
    # Each context's distribution sums to 1 over the vocabulary.
    for context in [(i["<s>"],), (i["a"],), (i["b"],), ()]:
        total = sum(10 ** lm.log10_prob(context, lm.ids[w]) for w in lm.vocabulary)
        assert total == pytest.approx(1.0, abs=1e-5)
    assert lm.sentence_log10(["a", "b"]) == pytest.approx(
        math.log10(0.625 * 0.375 * 0.6875), abs=1e-5
    )


def test_discounts_from_counts_of_counts():
    # t1 = 4, t2 = 2, t3 = 1, t4 = 1 (9 is no t_k): Y = 4 / 8 = 0.5, D1 = 1 - 2 * 0.5 * 2 / 4 = 0.5,
    # D2 = 2 - 3 * 0.5 * 1 / 2 = 1.25, D3 = 3 - 4 * 0.5 * 1 / 1 = 1.0.
    assert estimate_discounts([1, 1, 1, 1, 2, 2, 3, 4, 9]) == pytest.approx((0.5, 1.25, 1.0))
    assert estimate_discounts([1, 1, 2]) == (0.5, 1.0, 1.5)  # no t3/t4: the fallback


def test_higher_order_sums_to_one_and_matches_kenlm(tmp_path):
    text = ["the cat sat", "the cat ran", "a dog sat", "the dog ran far", "a cat"] * 3
    entries = train_kneser_ney([s.split() for s in text], order=3)
    path = write_arpa(entries, tmp_path / "tri.arpa")
    lm = read_arpa(path)
    for context in [
        (lm.ids["<s>"], lm.ids["the"]),
        (lm.ids["cat"],),
        (lm.ids["dog"], lm.ids["ran"]),
    ]:
        total = sum(10 ** lm.log10_prob(context, lm.ids[w]) for w in lm.vocabulary)
        assert total == pytest.approx(1.0, abs=1e-4)
    kenlm = pytest.importorskip("kenlm")
    model = kenlm.Model(str(path))
    for sentence in ["the cat sat", "a dog ran far", "the the dog", "cat zebra"]:
        assert lm.sentence_log10(sentence.split()) == pytest.approx(
            model.score(sentence, bos=True, eos=True), abs=1e-4
        )


def test_state_is_minimised():
    entries = train_kneser_ney([["a", "b", "c"], ["b", "c"]], order=3)
    lm = NgramLm(3, *_words_grams(entries))
    s0 = lm.initial_state()
    _, s1 = lm.score(s0, lm.ids["a"])
    assert s1 == (lm.ids["<s>"], lm.ids["a"])
    # "c a" was never seen, so no longer n-gram starts with it: the state keeps only "a".
    _, s2 = lm.score((lm.ids["c"],), lm.ids["a"])
    assert s2 == (lm.ids["a"],)
    # "b c" is followed by </s> in the text: it stays a two-word state.
    _, s3 = lm.score((lm.ids["a"], lm.ids["b"]), lm.ids["c"])
    assert s3 == (lm.ids["b"], lm.ids["c"])


def _words_grams(entries):
    words = sorted({w for n in entries for g in entries[n] for w in g})
    ids = {w: k for k, w in enumerate(words)}
    grams = {
        tuple(ids[w] for w in g): (logp, backoff or 0.0)
        for n in entries
        for g, (logp, backoff) in entries[n].items()
    }
    return words, grams


@pytest.mark.parametrize(
    "text, message",
    [
        ("hello\n", "no \\\\data\\\\ header|expected the"),
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\ta\n\\end\\\n", "announces 2 1-grams"),
        ("\\data\\\nngram 1=1\n\n\\1-grams:\nabc\ta\n\\end\\\n", "non-numeric"),
        ("\\data\\\nngram 1=1\n\n\\1-grams:\n-0.3\ta\n", "no \\\\end"),
        (
            "\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-0.3\ta\n\n\\2-grams:\n-0.1\ta z\n"
            "\\end\\\n",
            "'z' has no unigram",
        ),
    ],
)
def test_malformed_arpa_is_one_line(tmp_path, text, message):
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(ArpaError, match=message) as info:
        read_arpa(path, "--lm")
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_arpa_and_binary_garbage(tmp_path):
    with pytest.raises(ArpaError, match="no such ARPA file"):
        read_arpa(tmp_path / "nope.arpa")
    (tmp_path / "x.arpa.gz").write_bytes(b"\x00\x01 not gzip")
    with pytest.raises(ArpaError, match="cannot read"):
        read_arpa(tmp_path / "x.arpa.gz")


def test_vocabulary_mismatch_is_one_line(bigram):
    with pytest.raises(LmVocabularyError, match="does not match") as info:
        load_token_lm(bigram, ["<blk>", "<sos/eos>", "<unk>", "a", "x"])
    assert "'b'" in str(info.value) and "\n" not in str(info.value)
    lm = load_token_lm(bigram, ["<blk>", "<sos/eos>", "<unk>", "\u2581a", "a", "b"])
    assert isinstance(lm, TokenNgramLm)
    state = lm.initial_state()
    logp, state = lm.score(state, 4)  # "a" after <s>
    assert logp == pytest.approx(math.log(0.625), abs=1e-5)
    assert lm.final(state) == pytest.approx(math.log(0.4375), abs=1e-5)
    assert lm.is_word_start(3) and not lm.is_word_start(4)
