"""Making pseudo-labels: the relabel draw (--ipl-p-cache), top-N averaging by validation loss
(--ipl-average), labelling with each search through a real (micro) Zipformer, the skip counts
and the confidence filter."""

import argparse
import copy
import math
from collections import Counter

import pytest
import torch
from ipl_corpus import MICRO_MODEL
from lhotse import CutSet
from lhotse.utils import fastcopy

from icefall_lite.data import AsrDataModule, load_bpe_model
from icefall_lite.ipl import (
    averaged_labeller,
    best_epochs,
    confidence_of,
    label_cuts,
    resolve_decoding_method,
    select_for_relabel,
)
from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.training import add_training_arguments, get_training_params


def micro_params(vocab_size: int) -> dict:
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    add_model_arguments(parser)
    AsrDataModule.add_arguments(parser)
    params = get_training_params()
    params.update(vars(parser.parse_args(MICRO_MODEL)))
    params.update({"vocab_size": vocab_size, "blank_id": 0})
    return params


@pytest.fixture(scope="module")
def setup(ipl_corpus):
    root, hidden = ipl_corpus
    sp = load_bpe_model(root / "data" / "lang_bpe_20" / "bpe.model")
    torch.manual_seed(0)
    model = build_model(micro_params(sp.get_piece_size())).eval()
    cuts = CutSet.from_file(root / "data" / "fbank" / "synth_cuts_unlabeled.jsonl.gz").to_eager()
    return model, sp, cuts


def _force(model, token: int, strength: float, head: str):
    """A copy of ``model`` whose CTC head (or joiner) always prefers ``token``."""
    model = copy.deepcopy(model)
    linear = model.ctc_output[1] if head == "ctc" else model.joiner.output_linear
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        linear.bias[token] = strength
    return model


# ------------------------------------------------------------------ which cuts a pass relabels
def test_first_pass_labels_every_cut_later_ones_a_fraction():
    ids = [f"c{i:03d}" for i in range(200)]
    assert select_for_relabel(ids, 0.1, seed=1, generation=0) == sorted(ids)
    chosen = select_for_relabel(ids, 0.1, seed=1, generation=1)
    assert len(chosen) == 20 and set(chosen) <= set(ids)
    assert select_for_relabel(list(reversed(ids)), 0.1, seed=1, generation=1) == chosen
    assert select_for_relabel(ids, 0.1, seed=1, generation=2) != chosen
    assert select_for_relabel(ids, 0.1, seed=2, generation=1) != chosen
    assert select_for_relabel(ids, 0.0, seed=1, generation=5) == []
    assert select_for_relabel(ids, 1.0, seed=1, generation=5) == sorted(ids)


def test_each_cut_is_refreshed_with_probability_p_per_pass():
    ids = [f"c{i:03d}" for i in range(50)]
    p, passes = 0.3, 400
    counts = Counter()
    for generation in range(1, passes + 1):
        counts.update(select_for_relabel(ids, p, seed=7, generation=generation))
    # Binomial(400, 0.3): mean 120, sd 9.2; +-5 sd for each of 50 cuts.
    assert all(abs(counts[i] - p * passes) < 5 * math.sqrt(passes * p * (1 - p)) for i in ids)
    assert sum(counts.values()) == passes * 15


# ------------------------------------------------------------------ top-N averaging
def test_average_of_the_n_epochs_of_lowest_validation_loss(tmp_path):
    model = torch.nn.Linear(3, 2)
    weights = {}
    for epoch in range(1, 6):
        state = {k: torch.full_like(v, float(epoch)) for k, v in model.state_dict().items()}
        weights[epoch] = state
        torch.save({"model": state}, tmp_path / f"epoch-{epoch}.pt")
    losses = {1: 3.0, 2: 1.5, 3: 1.0, 4: 2.0, 5: float("nan"), 6: 0.1}  # 6: no file
    files = best_epochs(losses, tmp_path, 2)
    assert files == [tmp_path / "epoch-3.pt", tmp_path / "epoch-2.pt"]
    labeller = averaged_labeller(model, files, "cpu")
    assert torch.allclose(labeller.weight, torch.full((2, 3), 2.5))  # (3 + 2) / 2
    assert not labeller.training
    assert torch.equal(model.weight, model.weight)  # untouched: a copy was averaged
    assert not torch.allclose(model.weight, labeller.weight)
    assert len(best_epochs(losses, tmp_path, 10)) == 4  # nan and missing files are skipped
    assert best_epochs({1: 1.0, 2: 1.0}, tmp_path, 1) == [tmp_path / "epoch-2.pt"]  # tie: later


# ------------------------------------------------------------------ labelling
def test_decoding_method_must_fit_the_model():
    assert resolve_decoding_method("auto", True, True) == "greedy_search"
    assert resolve_decoding_method("auto", False, True) == "ctc_greedy_search"
    with pytest.raises(ValueError, match="needs a CTC head"):
        resolve_decoding_method("ctc_greedy_search", True, False)
    with pytest.raises(ValueError, match="needs a transducer"):
        resolve_decoding_method("modified_beam_search", False, True)


@pytest.mark.parametrize(
    "method, head", [("ctc_greedy_search", "ctc"), ("greedy_search", "joiner")]
)
def test_labels_come_from_the_search_with_their_confidence(setup, method, head):
    model, sp, cuts = setup
    # A whole-word piece: emitted on every frame it still reads as that word, repeated.
    token = next(i for i in range(3, sp.get_piece_size()) if sp.id_to_piece(i).startswith("▁"))
    forced = _force(model, token, 5.0, head)
    outcome = label_cuts(forced, cuts, sp, method, generation=4, batch_duration=3.0)
    assert outcome.counts["labelled"] == len(cuts)
    labels = [outcome.labels[cut.id] for cut in cuts]
    expected_word = sp.decode([token])
    assert all(label.generation == 4 for label in labels)
    assert all(set(label.text.split()) == {expected_word} for label in labels)
    if method == "ctc_greedy_search":
        # Every frame: p(token) = e^5 / (e^5 + V - 1); repeats collapse to one token.
        p = math.exp(5) / (math.exp(5) + sp.get_piece_size() - 1)
        assert all(label.text == expected_word for label in labels)
        assert all(label.confidence == pytest.approx(p, rel=1e-4) for label in labels)


def test_modified_beam_search_labels_too(setup):
    model, sp, cuts = setup
    forced = _force(model, 5, 6.0, "joiner")
    outcome = label_cuts(forced, cuts[:4], sp, "modified_beam_search", 1, 10.0, beam_size=2)
    assert outcome.counts["labelled"] == 4
    assert all(outcome.labels[c.id].text.startswith(sp.decode([5])) for c in cuts[:4])


def test_empty_and_low_confidence_labels_are_counted_and_dropped(setup):
    model, sp, cuts = setup
    blank = _force(model, 0, 8.0, "ctc")
    outcome = label_cuts(blank, cuts, sp, "ctc_greedy_search", 1, 5.0)
    assert outcome.counts == Counter({"empty": len(cuts)})
    assert all(outcome.labels[c.id] is None for c in cuts)
    confident = _force(model, 5, 5.0, "ctc")  # confidence ~0.89 (see above)
    kept = label_cuts(confident, cuts, sp, "ctc_greedy_search", 1, 5.0, min_confidence=0.8)
    dropped = label_cuts(confident, cuts, sp, "ctc_greedy_search", 1, 5.0, min_confidence=0.95)
    assert kept.counts == Counter({"labelled": len(cuts)})
    assert dropped.counts == Counter({"low_confidence": len(cuts)})
    assert dropped.summary() == f"labelled 0, empty 0, undecodable 0, low_confidence {len(cuts)}"


def test_cuts_that_cannot_be_decoded_are_skipped_with_a_count(setup, caplog):
    model, sp, cuts = setup
    good = list(cuts)[:3]
    missing = fastcopy(
        good[0], id="missing-features", features=fastcopy(good[0].features, storage_path="/no")
    )
    tiny = good[1].truncate(duration=0.04)  # 4 frames: too short for the encoder
    tiny = fastcopy(tiny, id="too-short")
    forced = _force(model, 5, 5.0, "ctc")
    outcome = label_cuts(
        forced, [missing, good[0], tiny, *good[1:]], sp, "ctc_greedy_search", 1, 30
    )
    assert outcome.counts == Counter({"labelled": 3, "undecodable": 2})
    assert outcome.labels["missing-features"] is None and outcome.labels["too-short"] is None
    assert "cannot label cut missing-features" in caplog.text
    assert all(len(r.getMessage()) < 400 for r in caplog.records)  # no cut dumps in the log


def test_confidence_is_the_per_frame_geometric_mean():
    assert confidence_of(0.0, 10) == 1.0
    assert confidence_of(10 * math.log(0.5), 10) == pytest.approx(0.5)
    assert confidence_of(-1.0, 0) == pytest.approx(math.exp(-1.0))


def test_labelling_leaves_a_training_model_in_training_mode(setup):
    model, sp, cuts = setup
    model = copy.deepcopy(model).train()
    label_cuts(model, list(cuts)[:2], sp, "ctc_greedy_search", 1, 30)
    assert model.training
