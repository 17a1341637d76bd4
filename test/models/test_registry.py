"""Model families by name: the built-in families, a family registered from outside, and a
clear error for a name nobody registered."""

import argparse

import pytest
from torch import nn

from icefall_lite.models import AsrModel, add_model_arguments, registry
from icefall_lite.utils import AttributeDict


def test_zipformer_is_built_from_its_params():
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    params = vars(parser.parse_args(["--model-size", "tiny", "--decoder-dim", "32"]))
    params.update(vocab_size=16, blank_id=0, feature_dim=80, joiner_dim=32)
    model = registry.build_model(AttributeDict(params, model_family="zipformer"))
    assert isinstance(model, AsrModel) and model.vocab_size == 16
    assert model.joiner.output_linear.in_features == 32


def test_every_shipped_family_is_registered():
    assert {"zipformer", "lstm_transducer", "conv_ctc"} <= set(registry.model_families())


def test_unknown_family_names_the_known_ones():
    with pytest.raises(registry.UnknownModelFamily, match="unknown model family 'nope'.*zipformer"):
        registry.build_model(AttributeDict(model_family="nope"))
    # A bad flag like any other: callers catching ValueError see it too.
    with pytest.raises(ValueError):
        registry.get_model_family("nope")


def test_a_registered_family_is_built(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    calls = []

    def build(params):
        calls.append(params.size)
        return nn.Linear(params.size, 1)

    registry.register_model_family("toy", build)
    assert "toy" in registry.model_families() and "zipformer" in registry.model_families()
    model = registry.build_model(AttributeDict(model_family="toy", size=3))
    assert isinstance(model, nn.Linear) and model.in_features == 3 and calls == [3]
