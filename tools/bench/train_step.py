#!/usr/bin/env python3
"""Time one training step (forward + backward + optimizer step) on CPU: the Zipformer
transducer's (ScaledAdam) and, with ``--model-family``, the LSTM transducer's (AdamW, full RNN-T
loss) and the conv_ctc recipe's model's (Jasper/QuartzNet CTC, Novograd), each as its synth
recipe builds it.

Usage (from the repository root):

    # the synth recipe's model (tiny Zipformer, vocab 500, decoder/joiner 256), 1 and 2 threads
    .venv/bin/python tools/bench/train_step.py --threads 1,2

    # current code vs the plain-autograd reference paths, steps interleaved A/B/A/B so that
    # machine noise hits both alike; prints the speed-up ratio
    .venv/bin/python tools/bench/train_step.py --compare --threads 1 --steps 10

    # where the time goes (torch.profiler, CPU), top 25 ops by self time
    .venv/bin/python tools/bench/train_step.py --profile 25 --threads 1

    # the three synth recipes' models (BPE 128) in one run, steps interleaved
    .venv/bin/python tools/bench/train_step.py --model-family zipformer,lstm_transducer,conv_ctc \
        --vocab-size 128 --threads 1

The batch is fixed and random: ``--batch`` utterances of about ``--seconds`` s of 80-dim
features at 100 frames/s (lengths spread over the last 20%), 10-30 tokens each. The model is
built by ``build_model`` from the synth recipe's flag defaults and put at ``--batch-count`` on
the Zipformer's internal schedules (dropout, skip rates, regulariser probabilities), which is
where a synth run spends most of its steps (``--ref-duration 10``: step s is batch count 10 s).

Columns: ms/step (median over the timed steps), x real time (audio seconds trained per
wall-clock second), and with ``--compare`` the reference/current ratio. ``--model-family
conv_ctc`` builds ``--conv-preset`` (default: the recipe's ``cpu``) and times CTC + Novograd.
"""

import argparse
import contextlib
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.models import add_model_arguments, build_model  # noqa: E402
from icefall_lite.models.zipformer import scaling  # noqa: E402
from icefall_lite.models.zipformer.scaling import set_batch_count  # noqa: E402
from icefall_lite.optim import Novograd, ScaledAdam, get_parameter_groups_with_lrs  # noqa: E402
from icefall_lite.utils import AttributeDict  # noqa: E402

FRAMES_PER_SECOND = 100
VOCAB_SIZE = 500
BLANK_ID = 0
BENCH_FAMILIES = ("zipformer", "lstm_transducer", "conv_ctc")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=str, default="1,2", help="torch.set_num_threads values.")
    parser.add_argument("--steps", type=int, default=8, help="Timed steps per configuration.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
    parser.add_argument("--batch", type=int, default=8, help="Utterances per batch.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Longest utterance, seconds.")
    parser.add_argument(
        "--batch-count",
        type=float,
        default=4000.0,
        help="Position on the Zipformer's schedules (set_batch_count); 0 = start of training.",
    )
    parser.add_argument("--model-size", type=str, default="tiny", help="Zipformer preset.")
    parser.add_argument(
        "--model-family",
        type=str,
        default="zipformer",
        help="Comma-separated families timed in one run: zipformer, lstm_transducer (the "
        "--lstm-preset cpu model with the full RNN-T loss and AdamW, as its recipe trains it), "
        "conv_ctc (--conv-preset, CTC + Novograd).",
    )
    parser.add_argument(
        "--vocab-size", type=int, default=VOCAB_SIZE, help="Vocabulary (blank included)."
    )
    parser.add_argument(
        "--encoder-embed-channels",
        type=int,
        default=0,
        help="Front-end (ConvNeXt) channels; 0: the preset's (tiny: 32). 128 times the old front "
        "end.",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="Also run the plain-autograd reference paths (scaling.reference_implementations) "
        "and report reference / current time.",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        help="If > 0: profile the timed steps of the current code and print this many ops.",
    )
    parser.add_argument(
        "--zipformer-variants",
        type=str,
        default="",
        help="Extra Zipformer models timed beside the others, as NAME=FLAGS entries separated by "
        "';', e.g. 'deep=--num-encoder-layers 1,1,2,2,2,1;wide=--encoder-dim "
        "96,128,160,192,160,128' (FLAGS: the model flags of train.py, applied on top of "
        "--model-size).",
    )
    parser.add_argument("--seed", type=int, default=1234, help="Seed for model and batch.")
    parser.add_argument("--conv-preset", type=str, default="cpu", help="conv_ctc preset.")
    return parser


def build_synth_model(
    model_size: str,
    encoder_embed_channels: int = 0,
    family: str = "zipformer",
    vocab_size: int = VOCAB_SIZE,
    conv_preset: str = "cpu",
    extra_flags: Tuple[str, ...] = (),
) -> torch.nn.Module:
    """The synth recipe's model: its flag defaults, decoder/joiner dims 256; the preset's
    front-end width unless ``encoder_embed_channels`` > 0. ``family="lstm_transducer"``: the
    lstm_transducer recipe's cpu preset with the full RNN-T loss and its CTC head;
    ``"conv_ctc"``: the ``conv_preset`` Jasper/QuartzNet model. ``extra_flags``: further
    Zipformer model flags (train.py's spelling). Every family is built through the registry."""
    if family == "lstm_transducer":
        params = AttributeDict(
            model_family=family,
            lstm_preset="cpu",
            rnnt_loss="full",
            use_ctc=True,  # the recipe's default CTC head (weight 1)
            vocab_size=vocab_size,
            blank_id=BLANK_ID,
            feature_dim=80,
        )
        return build_model(params)
    if family == "conv_ctc":
        params = AttributeDict(
            model_family=family,
            conv_preset=conv_preset,
            vocab_size=vocab_size,
            blank_id=BLANK_ID,
            feature_dim=80,
        )
        return build_model(params)
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    flags = ["--model-size", model_size]
    if encoder_embed_channels > 0:
        flags += ["--encoder-embed-channels", str(encoder_embed_channels)]
    flags += list(extra_flags)
    params = AttributeDict(vars(parser.parse_args(flags)))
    params.update(
        model_size=model_size,
        decoder_dim=256,
        joiner_dim=256,
        vocab_size=vocab_size,
        blank_id=BLANK_ID,
        feature_dim=80,
    )
    return build_model(params)


def make_batch(
    batch_size: int, seconds: float, generator: torch.Generator, vocab_size: int = VOCAB_SIZE
) -> Tuple[torch.Tensor, torch.Tensor, List[List[int]]]:
    """Features (N, T, 80), lengths (N,) in frames, and 10-30 random tokens per utterance."""
    max_frames = int(seconds * FRAMES_PER_SECOND)
    features = torch.randn(batch_size, max_frames, 80, generator=generator)
    low = int(0.8 * max_frames)
    lens = torch.randint(low, max_frames + 1, (batch_size,), generator=generator)
    lens[0] = max_frames
    tokens = []
    for _ in range(batch_size):
        num_tokens = int(torch.randint(10, 31, (1,), generator=generator))
        tokens.append(torch.randint(3, vocab_size, (num_tokens,), generator=generator).tolist())
    return features, lens, tokens


class Runner:
    """One model + optimizer; ``step()`` runs one training step under its implementation mode."""

    def __init__(
        self,
        args: argparse.Namespace,
        reference: bool,
        family: str = "zipformer",
        extra_flags: Tuple[str, ...] = (),
    ) -> None:
        torch.manual_seed(args.seed)
        self.family = family
        self.model = build_synth_model(
            args.model_size,
            args.encoder_embed_channels,
            family,
            args.vocab_size,
            args.conv_preset,
            extra_flags,
        )
        self.model.train()
        if family == "lstm_transducer":
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=2e-3)
        elif family == "conv_ctc":
            # The synth conv_ctc recipe's optimizer settings.
            self.optimizer = Novograd(
                self.model.parameters(), lr=0.03, betas=(0.8, 0.5), weight_decay=0.001
            )
        else:
            set_batch_count(self.model, args.batch_count)
            self.optimizer = ScaledAdam(
                get_parameter_groups_with_lrs(self.model, lr=0.045, include_names=True),
                lr=0.045,
                clipping_scale=2.0,
            )
        generator = torch.Generator().manual_seed(args.seed)
        self.batch = make_batch(args.batch, args.seconds, generator, args.vocab_size)
        self.reference = reference
        # Each runner has its own Python RNG so interleaving does not change its random draws
        # (which regulariser fires, dropout masks are torch's and are not compared).
        self.rng_state = random.Random(args.seed).getstate()

    def _mode(self):
        if self.reference:
            return scaling.reference_implementations()
        return contextlib.nullcontext()

    def step(self) -> float:
        """One training step; returns its wall time in seconds."""
        features, lens, tokens = self.batch
        saved_state = random.getstate()
        random.setstate(self.rng_state)
        start = time.perf_counter()
        with self._mode():
            simple_loss, pruned_loss, ctc_loss = self.model(
                features, lens, tokens, prune_range=5, am_scale=0.0, lm_scale=0.25
            )
            if self.family == "conv_ctc":
                loss = ctc_loss
            elif self.family == "lstm_transducer":
                loss = pruned_loss + ctc_loss  # the full RNN-T loss + CTC at weight 1
            else:
                loss = 0.5 * simple_loss + pruned_loss
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        elapsed = time.perf_counter() - start
        self.rng_state = random.getstate()
        random.setstate(saved_state)
        return elapsed


def time_runners(runners: Dict[str, Runner], args: argparse.Namespace) -> Dict[str, List[float]]:
    """Warm-up then timed steps, alternating runners step by step."""
    for _ in range(args.warmup):
        for runner in runners.values():
            runner.step()
    times: Dict[str, List[float]] = {name: [] for name in runners}
    for _ in range(args.steps):
        for name, runner in runners.items():
            times[name].append(runner.step())
    return times


def profile_runner(runner: Runner, args: argparse.Namespace) -> None:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(args.warmup):
        runner.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            runner.step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile)
    print(table)


def parse_variants(text: str) -> Dict[str, Tuple[str, ...]]:
    """'name=--flag v --flag2 v2;name2=...' -> {name: flags}; exits with one line on a bad entry."""
    variants: Dict[str, Tuple[str, ...]] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        name, sep, flags = entry.partition("=")
        if not sep or not name.strip() or not flags.split():
            sys.exit(
                f"train_step.py: error: --zipformer-variants entry {entry!r}: expected NAME=FLAGS"
            )
        variants[name.strip()] = tuple(flags.split())
    return variants


def main() -> None:
    args = get_parser().parse_args()
    families = [f.strip() for f in args.model_family.split(",") if f.strip()]
    for family in families:
        if family not in BENCH_FAMILIES:
            sys.exit(
                f"train_step.py: error: --model-family {family}: expected a comma list of "
                f"{', '.join(BENCH_FAMILIES)}"
            )
    variants = parse_variants(args.zipformer_variants)
    audio_seconds_per_step = None
    rows = []
    params_of: Dict[str, int] = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        # One runner per family (and the Zipformer's reference paths with --compare), stepped
        # in turn so that machine noise hits them alike.
        runners: Dict[str, Runner] = {}
        for family in families:
            runners[f"{family}:current"] = Runner(args, reference=False, family=family)
            if args.compare and family == "zipformer":
                runners[f"{family}:reference"] = Runner(args, reference=True, family=family)
        for name, flags in variants.items():
            runners[f"zipformer[{name}]:current"] = Runner(args, False, "zipformer", flags)
        if args.profile > 0:
            for runner in runners.values():
                profile_runner(runner, args)
            continue
        for key, runner in runners.items():
            params_of[key.split(":")[0]] = sum(p.numel() for p in runner.model.parameters())
        first = next(iter(runners.values()))
        audio_seconds_per_step = float(first.batch[1].sum()) / FRAMES_PER_SECOND
        times = time_runners(runners, args)
        medians = {name: statistics.median(t) for name, t in times.items()}
        for key, median in medians.items():
            family, name = key.split(":")
            ratio = medians.get(f"{family}:reference", float("nan")) / median
            rows.append(
                (family, threads, name, 1000.0 * median, audio_seconds_per_step / median, ratio)
            )
        base = medians.get("zipformer:current")
        if base and variants:
            for name in variants:
                print(
                    f"# zipformer[{name}] / zipformer ms per step at {threads} thread(s): "
                    f"{medians[f'zipformer[{name}]:current'] / base:.2f}"
                )
    if not rows:
        return
    sizes = ", ".join(f"{f} {n / 1e6:.2f}M params" for f, n in params_of.items())
    print(
        f"# {args.model_size} Zipformer / lstm_transducer cpu / conv_ctc {args.conv_preset} "
        f"presets ({sizes}); vocab "
        f"{args.vocab_size}; batch {args.batch} utts, {audio_seconds_per_step:.1f} s audio/step; "
        f"batch_count {args.batch_count:g}; {args.steps} timed steps (median); torch "
        f"{torch.__version__}; {platform.processor() or platform.machine()}"
    )
    print(
        f"{'family':>16} {'threads':>7} {'variant':>10} {'ms/step':>9} {'x real time':>12} "
        f"{'ref/cur':>8}"
    )
    for family, threads, name, ms, speed, ratio in rows:
        ratio_text = f"{ratio:8.2f}" if name == "current" and args.compare else f"{'':>8}"
        print(f"{family:>16} {threads:>7} {name:>10} {ms:9.1f} {speed:12.2f} {ratio_text}")


if __name__ == "__main__":
    main()
