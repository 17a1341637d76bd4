"""Training checkpoints keep their format across the training/ package split: a checkpoint
written by the code before it (test/fixtures/training-checkpoint-v0.pt, made at commit 3bf401b
by test/fixtures/make_training_checkpoint_v0.py) resumes, and the checkpoint the current code
writes after training on has the same entries."""

import copy
from pathlib import Path

import torch
from test_training import _fixed_batches, _params, _Tokenizer, _whitened_model

from icefall_lite.checkpoint import read_checkpoint
from icefall_lite.optim import Eden, ScaledAdam, get_parameter_groups_with_lrs
from icefall_lite.training import TrainingState, restore_training_state, train_epoch

FIXTURE = Path(__file__).parent / "fixtures" / "training-checkpoint-v0.pt"


class _Sampler:
    def __init__(self):
        self.epoch = 0

    def state_dict(self):
        return {"epoch": self.epoch, "diagnostics": {"num_kept": 8}}


class Batches(list):
    """A list of batches with a sampler, as the fixture's run had."""

    sampler = _Sampler()


def _state(exp_dir: Path) -> TrainingState:
    """The run the fixture came from (same model, optimizer and schedule), not yet resumed."""
    model = _whitened_model()
    params = _params(exp_dir=exp_dir, save_every_n=2, average_period=1, keep_last_k=5)
    params.start_batch = 2
    optimizer = ScaledAdam(
        get_parameter_groups_with_lrs(model, lr=0.05, include_names=True),
        lr=0.05,
        clipping_scale=2.0,
    )
    batches = Batches(_fixed_batches(2))
    return TrainingState(
        params=params,
        model=model,
        optimizer=optimizer,
        scheduler=Eden(optimizer, 100, 2, warmup_batches=2),
        scaler=torch.amp.GradScaler("cuda", enabled=False),
        model_avg=copy.deepcopy(model).to(torch.float64),
        sampler=batches.sampler,
        sp=_Tokenizer(),
    )


def test_a_checkpoint_of_the_old_code_resumes(tmp_path):
    state = _state(tmp_path)
    checkpoint = restore_training_state(state, FIXTURE)
    old = read_checkpoint(FIXTURE)
    assert state.params.batch_idx_train == 2 and state.params.start_epoch == old["cur_epoch"]
    assert state.bare_model.encoder.whiten.prob == 0.05  # the adapted regulariser state
    assert torch.equal(state.model.state_dict()["joiner.output_linear.weight"],
                       old["model"]["joiner.output_linear.weight"])  # fmt: skip
    assert len(state.optimizer.state) > 0
    # The old scheduler state lacks the cooldown's step counters: they start at "this epoch
    # began here, its length unknown" (the cooldown then paces from the next epoch on).
    assert state.scheduler.state_dict() == {
        **old["scheduler"],
        "epoch_start_batch": old["scheduler"]["batch"],
        "steps_per_epoch": 0,
    }

    resume = {k: checkpoint[k] for k in ("rng_states", "train_loss_tracker")}
    train_epoch(state, Batches(_fixed_batches(2)), None, resume)
    assert state.params.batch_idx_train == 4
    new = read_checkpoint(tmp_path / "checkpoint-4.pt")
    # Resuming sets the training clock's train_seconds_before_run (run() sets it in any case);
    # --init-from-allow-missing is a flag added since (issue #18), and --cuts-prefix and
    # --shar-dir, --nemo-tarred-manifest and --nemo-tarred-audio are data flags added since
    # (issue #17), stored like every flag, and so are
    # the reference RNN-T training controls (issue #14), the augmentation flags (#11), and the
    # optimizer/schedule choices and the SpecAugment-mask flags of issue #13, and the
    # pseudo-labelling flags of issue #15.
    assert set(new) == set(old) | {
        "train_seconds_before_run",
        "init_from_allow_missing",
        "cuts_prefix",
        "shar_dir",
        "nemo_tarred_manifest",
        "nemo_tarred_audio",
        "global_batch_size",
        "optim",
        "weight_decay",
        "lr_schedule",
        "warmup_steps",
        "hold_steps",
        "half_life_steps",
        "min_lr",
        "joint_net_lr_factor",
        "ema",
        # the learning-rate cooldown (issue #11)
        "lr_cooldown_epochs",
        # augmentation schedule and strength flags (issue #11)
        "spec_aug_num_feature_masks",
        "spec_aug_features_mask_size",
        "spec_aug_num_frame_masks",
        "spec_aug_frames_mask_size",
        "spec_aug_max_frames_mask_fraction",
        "spec_aug_start_epoch",
        "musan_start_epoch",
        # Novograd, the cosine/poly schedules and the Jasper/QuartzNet masks (issue #13)
        "novograd_betas",
        "lr_decay_batches",
        "enable_spec_masks",
        "spec_freq_masks",
        "spec_freq_width",
        "spec_time_masks",
        "spec_time_width",
        "spec_cutout_rects",
        "spec_cutout_time",
        "spec_cutout_freq",
        # pseudo-labelling flags (issue #15)
        "ipl_unlabeled_cuts",
        "ipl_tarred_audio",
        "ipl_cache",
        "ipl_p_cache",
        "ipl_average",
        "ipl_decoding_method",
        "ipl_beam_size",
        "ipl_batch_duration",
        "ipl_min_confidence",
        "ipl_n_epochs",
        "ipl_restore",
    }
    assert set(new["model"]) == set(old["model"]) and set(new["model_avg"]) == set(old["model_avg"])
    for key in ("rng_states", "regulariser_states"):
        assert len(new[key]) == len(old[key]) == 1 and set(new[key][0]) == set(old[key][0])
    assert set(new["train_loss_tracker"]) == set(old["train_loss_tracker"])
    assert set(new["optimizer"]) == set(old["optimizer"])
    assert new["sampler"] == old["sampler"] and new["grad_scaler"] == old["grad_scaler"]
