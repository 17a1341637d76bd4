"""The whole model learns to listen: a small Zipformer transducer (+ CTC head), trained with the
real pruned RNN-T loss, ScaledAdam and the training loop's ``compute_loss``, must learn a toy
"speech" task well enough that greedy search (and CTC greedy search) transcribe unseen
utterances.

The task has no language model to fall back on: every utterance is a uniformly random token
sequence, so the decoder's prior is useless and a low error rate is only reachable through the
encoder. Each token is a fixed spectral pattern held for 12-16 frames, separated by short gaps of
"silence", with noise on top. This catches failures that a falling loss alone does not show
(a model that ignores its input, a search that disagrees with the loss, outputs returned in the
wrong order), which on a real corpus would only surface hours into a run.
"""

import argparse
import random
from typing import List, Tuple

import pytest
import torch

from icefall_lite.data import AsrDataModule
from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.optim import ScaledAdam, get_parameter_groups_with_lrs
from icefall_lite.search.ctc import ctc_greedy_search
from icefall_lite.search.greedy import greedy_search
from icefall_lite.training import (
    add_training_arguments,
    compute_loss,
    get_training_params,
    set_batch_count,
)
from icefall_lite.utils import AttributeDict

VOCAB_SIZE = 6  # blank + 5 "words"
FEATURE_DIM = 80
SILENCE_LEVEL = -8.0

MICRO_ZIPFORMER = [
    "--num-encoder-layers", "1,1",
    "--downsampling-factor", "1,2",
    "--encoder-dim", "64,64",
    "--feedforward-dim", "128,128",
    "--num-heads", "2,2",
    "--encoder-unmasked-dim", "32,32",
    "--cnn-module-kernel", "15,15",
    "--query-head-dim", "16",
    "--value-head-dim", "8",
    "--pos-head-dim", "4",
    "--pos-dim", "16",
    "--decoder-dim", "64",
    "--joiner-dim", "64",
    "--use-ctc", "1",
]  # fmt: skip


class _Letters:
    """Token ids written as letters ("a" = 1), standing in for the SentencePiece model."""

    def encode(self, texts: List[str], out_type=int) -> List[List[int]]:
        return [[ord(c) - ord("a") + 1 for c in text] for text in texts]


def _templates(generator: torch.Generator) -> torch.Tensor:
    """(VOCAB_SIZE, 80): token k (>= 1) raises a band of 8 mel bins of its own."""
    templates = torch.full((VOCAB_SIZE, FEATURE_DIM), SILENCE_LEVEL)
    for k in range(1, VOCAB_SIZE):
        start = 4 + 14 * (k - 1)
        templates[k, start : start + 8] = 2.0 + torch.rand(8, generator=generator)
    return templates


def _utterance(
    templates: torch.Tensor, rng: random.Random, generator: torch.Generator
) -> Tuple[torch.Tensor, List[int]]:
    tokens = [rng.randint(1, VOCAB_SIZE - 1) for _ in range(rng.randint(2, 5))]
    frames = [templates[0].expand(rng.randint(6, 10), FEATURE_DIM)]
    for token in tokens:
        frames.append(templates[token].expand(rng.randint(12, 16), FEATURE_DIM))
        frames.append(templates[0].expand(rng.randint(3, 6), FEATURE_DIM))
    features = torch.cat(frames)
    return features + 0.5 * torch.randn(features.shape, generator=generator), tokens


def _batch(num_utts: int, templates, rng, generator):
    utterances = [_utterance(templates, rng, generator) for _ in range(num_utts)]
    lens = torch.tensor([u[0].size(0) for u in utterances])
    features = torch.full((num_utts, int(lens.max()), FEATURE_DIM), SILENCE_LEVEL)
    for i, (feats, _) in enumerate(utterances):
        features[i, : feats.size(0)] = feats
    texts = ["".join(chr(ord("a") + t - 1) for t in u[1]) for u in utterances]
    batch = {"inputs": features, "supervisions": {"num_frames": lens, "text": texts}}
    return batch, [u[1] for u in utterances]


def _token_error_rate(hyps: List[List[int]], refs: List[List[int]]) -> float:
    import kaldialign

    errors = sum(kaldialign.edit_distance(r, h)["total"] for r, h in zip(refs, hyps))
    return errors / sum(len(r) for r in refs)


def _params() -> AttributeDict:
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    add_model_arguments(parser)
    AsrDataModule.add_arguments(parser)
    params = get_training_params()
    params.update(vars(parser.parse_args(MICRO_ZIPFORMER)))
    params.update({"vocab_size": VOCAB_SIZE, "blank_id": 0, "warm_step": 30, "prune_range": 3})
    return params


@pytest.mark.slow
def test_zipformer_transducer_learns_to_transcribe_unseen_toy_utterances():
    torch.manual_seed(0)
    rng, generator = random.Random(0), torch.Generator().manual_seed(0)
    templates = _templates(generator)
    params = _params()
    model = build_model(params)
    optimizer = ScaledAdam(
        get_parameter_groups_with_lrs(model, lr=0.045, include_names=True),
        lr=0.045,
        clipping_scale=2.0,
    )
    # 48 unseen utterances (~170 tokens): one error is ~0.6 %, so the rates are not coarse.
    test_batch, test_refs = _batch(48, templates, rng, generator)
    tokenizer = _Letters()

    def error_rates() -> Tuple[float, float]:
        model.eval()
        with torch.no_grad():
            x = test_batch["inputs"]
            encoder_out, encoder_out_lens = model.forward_encoder(
                x, test_batch["supervisions"]["num_frames"]
            )
            transducer = greedy_search(model, encoder_out, encoder_out_lens)
            ctc = ctc_greedy_search(model.ctc_output(encoder_out), encoder_out_lens)
        model.train()
        return (
            _token_error_rate([r.tokens for r in transducer], test_refs),
            _token_error_rate([r.tokens for r in ctc], test_refs),
        )

    initial = error_rates()
    history = [initial]
    model.train()
    for step in range(450):
        params.batch_idx_train = step
        # The Zipformer's regularisation schedules, compressed to this short run.
        set_batch_count(model, 20.0 * step)
        batch, _ = _batch(12, templates, rng, generator)
        loss, _ = compute_loss(params, model, tokenizer, batch, is_training=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 49:
            history.append(error_rates())
            # Stop at half the bound asserted below: the run ends with a margin, so a
            # different thread count or platform (other rounding) does not tip it over.
            if max(history[-1]) < 0.025:
                break
    print("token error rates (transducer, CTC) every 50 steps:", history)
    transducer_ter, ctc_ter = history[-1]
    assert initial[0] > 0.5, f"an untrained model should not transcribe: {history}"
    assert transducer_ter < 0.05, f"greedy search token error rates per 50 steps: {history}"
    assert ctc_ter < 0.05, f"(transducer, CTC) token error rates per 50 steps: {history}"
