"""SpecAugment masks and SpecCutout rectangles: only the masked regions change."""

import pytest
import torch

from icefall_lite.data.masks import SpecMasks


def test_only_the_masked_regions_change():
    torch.manual_seed(0)
    features = torch.randn(3, 120, 40) + 5.0
    segments = torch.tensor([[0, 0, 120], [1, 0, 80], [2, 10, 50]])
    transform = SpecMasks(
        freq_masks=2,
        freq_width=8,
        time_masks=2,
        time_width=15,
        rect_masks=3,
        rect_time=10,
        rect_freq=6,
        generator=torch.Generator().manual_seed(1),
    )
    expected_mask = SpecMasks(
        freq_masks=2,
        freq_width=8,
        time_masks=2,
        time_width=15,
        rect_masks=3,
        rect_time=10,
        rect_freq=6,
        generator=torch.Generator().manual_seed(1),
    ).mask(torch.tensor([120, 80, 60]), 120, 40)
    out = transform(features.clone(), supervision_segments=segments)
    changed = out != features
    assert changed.any()
    assert torch.equal(changed, expected_mask)
    # Masked values are the utterance's mean; nothing past an utterance's end is touched.
    means = features.mean(dim=(1, 2))
    for i in range(3):
        assert torch.allclose(
            out[i][expected_mask[i]], means[i].expand(int(expected_mask[i].sum()))
        )
    assert not changed[1, 80:].any() and not changed[2, 60:].any()


def test_widths_are_bounded():
    transform = SpecMasks(
        freq_masks=1,
        freq_width=5,
        time_masks=0,
        rect_masks=0,
        generator=torch.Generator().manual_seed(0),
    )
    for _ in range(20):
        mask = transform.mask(torch.tensor([50]), 50, 30)[0]
        bins = mask.any(dim=0).nonzero().flatten()
        if len(bins):
            assert bins.max() - bins.min() < 5 and len(bins) <= 5
            assert mask[:, bins].all()


def test_no_masks_is_the_identity():
    x = torch.randn(2, 30, 10)
    assert torch.equal(SpecMasks(0, 0, 0, 0, 0)(x), x)
    with pytest.raises(ValueError, match="time_width"):
        SpecMasks(time_width=-1)
