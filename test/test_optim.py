"""ScaledAdam and Eden."""

import copy as copy_module
import math

import pytest
import torch
from torch import nn

from icefall_lite.models.zipformer import build_zipformer, preset_params, set_batch_count
from icefall_lite.optim import Eden, ScaledAdam, get_parameter_groups_with_lrs
from icefall_lite.utils import make_pad_mask


def eden_reference(base_lr, batch, epoch, lr_batches, lr_epochs, warmup_batches=500.0):
    warmup = 1.0 if batch >= warmup_batches else 0.5 + 0.5 * batch / warmup_batches
    return (
        base_lr
        * ((batch**2 + lr_batches**2) / lr_batches**2) ** -0.25
        * ((epoch**2 + lr_epochs**2) / lr_epochs**2) ** -0.25
        * warmup
    )


def test_eden_values():
    model = nn.Linear(2, 2)
    optimizer = ScaledAdam(model.parameters(), lr=0.045)
    scheduler = Eden(optimizer, lr_batches=7500, lr_epochs=3.5)
    # Hand-computed anchor points:
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0225)  # warm-up starts at half
    scheduler.step_batch(250)
    assert scheduler.get_last_lr()[0] == pytest.approx(0.045 * 0.75 * (1 + 1 / 900) ** -0.25)
    scheduler.step_batch(7500)
    scheduler.step_epoch(3.5)
    # both factors are 2 ** -0.25 exactly at batch == lr_batches, epoch == lr_epochs
    assert scheduler.get_last_lr()[0] == pytest.approx(0.045 / math.sqrt(2))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.045 / math.sqrt(2))
    for batch, epoch in [(1, 0), (499, 1), (500, 2), (20000, 10), (100000, 30)]:
        scheduler.step_batch(batch)
        scheduler.step_epoch(epoch)
        assert scheduler.get_last_lr()[0] == pytest.approx(
            eden_reference(0.045, batch, epoch, 7500, 3.5)
        )
    # resumes from its state dict
    state = scheduler.state_dict()
    other = Eden(ScaledAdam(nn.Linear(2, 2).parameters(), lr=0.045), 7500, 3.5)
    other.load_state_dict(state)
    assert other.get_last_lr() == pytest.approx(scheduler.get_last_lr())


def test_eden_rejects_bad_settings():
    optimizer = ScaledAdam(nn.Linear(2, 2).parameters(), lr=0.045)
    with pytest.raises(ValueError, match="--lr-batches"):
        Eden(optimizer, lr_batches=0, lr_epochs=3.5)
    with pytest.raises(ValueError, match="--lr-epochs"):
        Eden(optimizer, lr_batches=10, lr_epochs=-1)


def test_scaled_adam_update_is_relative_to_parameter_rms():
    torch.manual_seed(0)
    small = nn.Parameter(torch.randn(50, 50) * 0.01)
    large = nn.Parameter(torch.randn(50, 50) * 1.0)
    optimizer = ScaledAdam([small, large], lr=0.01, betas=(0.0, 0.98))
    before = [small.detach().clone(), large.detach().clone()]
    small.grad = torch.randn(50, 50)
    large.grad = small.grad.clone()
    optimizer.step()
    rel_small = (small.detach() - before[0]).norm() / before[0].norm()
    rel_large = (large.detach() - before[1]).norm() / before[1].norm()
    assert rel_small == pytest.approx(rel_large.item(), rel=0.05)
    # plain Adam would move both by the same absolute amount instead
    assert (small.detach() - before[0]).norm() < 0.05 * (large.detach() - before[1]).norm()


def test_scaled_adam_minimises_a_quadratic():
    torch.manual_seed(0)
    target = torch.randn(20, 10)
    weight = nn.Parameter(torch.randn(20, 10))
    scalar = nn.Parameter(torch.tensor(0.0))
    optimizer = ScaledAdam([("weight", weight), ("scalar", scalar)], lr=0.05, clipping_scale=2.0)

    def loss_fn():
        # scalars move by at most lr * scalar_lr_scale per step: a reachable target
        return ((weight - target) ** 2).mean() + (scalar - 0.5) ** 2

    initial = loss_fn().item()
    for _ in range(300):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()
    assert loss_fn().item() < 0.05 * initial


def test_scalar_parameters_are_clamped():
    scalar = nn.Parameter(torch.tensor(9.99))
    optimizer = ScaledAdam([scalar], lr=1.0, scalar_max=10.0)
    for _ in range(5):
        scalar.grad = torch.tensor(-1.0)
        optimizer.step()
    assert scalar.item() == pytest.approx(10.0)


def test_gradient_spikes_are_clipped():
    torch.manual_seed(0)
    weight = nn.Parameter(torch.randn(10, 10))
    optimizer = ScaledAdam([weight], lr=0.0, clipping_scale=2.0, clipping_update_period=10)
    for _ in range(11):  # establishes the median norm (threshold set at step 10)
        weight.grad = torch.randn(10, 10)
        optimizer.step()
    spike = torch.randn(10, 10) * 1000.0
    weight.grad = spike.clone()
    factor = optimizer._clipping_factor(optimizer.param_groups[0], optimizer.parameter_names[0])
    assert 0.0 < factor < 0.01


def test_optimizer_state_dict_round_trip():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    optimizer = ScaledAdam(get_parameter_groups_with_lrs(model, lr=0.01, include_names=True))
    for _ in range(6):
        optimizer.zero_grad()
        model(torch.randn(3, 4)).sum().backward()
        optimizer.step()
    # deep copy: a state_dict shares tensors with the live optimizer (as if saved to disk)
    state = copy_module.deepcopy(optimizer.state_dict())
    copy = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    copy.load_state_dict(model.state_dict())
    restored = ScaledAdam(get_parameter_groups_with_lrs(copy, lr=0.01, include_names=True))
    restored.load_state_dict(state)
    x = torch.randn(3, 4)
    for m, opt in ((model, optimizer), (copy, restored)):
        opt.zero_grad()
        m(x).sum().backward()
        opt.step()
    for a, b in zip(model.parameters(), copy.parameters()):
        torch.testing.assert_close(a, b)


def test_parameter_groups_honour_lr_scale():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))
    model[1].lr_scale = 0.5
    model[1][0].lr_scale = 0.5
    groups = get_parameter_groups_with_lrs(model, lr=0.1, include_names=True)
    lrs = {name: group["lr"] for group in groups for name, _ in group["named_params"]}
    assert lrs["0.weight"] == pytest.approx(0.1)
    assert lrs["1.0.weight"] == pytest.approx(0.025)
    assert lrs["1.1.bias"] == pytest.approx(0.05)
    plain = get_parameter_groups_with_lrs(model, lr=0.1)
    assert sum(len(g["params"]) for g in plain) == len(list(model.parameters()))


def test_a_few_steps_lower_the_loss_of_the_tiny_zipformer():
    torch.manual_seed(0)
    encoder_embed, encoder = build_zipformer(preset_params("tiny"))
    model = nn.ModuleDict({"encoder_embed": encoder_embed, "encoder": encoder})
    head = nn.Linear(encoder.output_dim, 5)
    model["head"] = head
    optimizer = ScaledAdam(model.named_parameters(), lr=0.045, clipping_scale=2.0)
    scheduler = Eden(optimizer, lr_batches=7500, lr_epochs=3.5, warmup_batches=0)
    x = torch.randn(2, 60, 80)
    x_lens = torch.tensor([60, 60])
    targets = torch.randint(0, 5, (2, 13))  # one class per output frame

    def loss_fn():
        emb, emb_lens = encoder_embed(x, x_lens)
        out, _ = encoder(emb.permute(1, 0, 2), emb_lens, make_pad_mask(emb_lens, emb.shape[1]))
        logits = head(out.permute(1, 0, 2))
        return nn.functional.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1))

    model.eval()  # deterministic loss for the comparison
    with torch.no_grad():
        initial = loss_fn().item()
    model.train()
    for step in range(8):
        set_batch_count(model, 50000.0)  # late-training schedules: little random skipping
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()
        scheduler.step_batch(step + 1)
    model.eval()
    with torch.no_grad():
        final = loss_fn().item()
    assert final < 0.8 * initial, (initial, final)
