"""End-to-end: zipformer/decode.py on a tiny model, tiny BPE model and a few cuts with fbank."""

import argparse
import ast
import importlib.util
import random
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import (
    CutSet,
    Fbank,
    LilcomChunkyWriter,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
)

from icefall_lite.checkpoint import save_checkpoint
from icefall_lite.data import train_bpe_model
from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.utils import AttributeDict

REPO = Path(__file__).resolve().parents[2]
NUM_CUTS = 10
AUDIO_SECONDS = sum(0.5 + 0.1 * i for i in range(NUM_CUTS))
WORDS = "the cat sat on a mat red blue green dog ran far near home yes no".split()

# A constructed case with a known answer: make_recipe_dir(known_answer=True) sets the model's
# weights so that its transducer emits KNOWN_HYP and its CTC head KNOWN_CTC_HYP for every
# cut, whatever the audio. Each cut's reference, with its word errors (counted by hand)
# against the transducer's and the CTC head's answer:
KNOWN_HYP, KNOWN_CTC_HYP = "THE DOG RAN HOME", "NO"
KNOWN_CUTS = [("THE DOG RAN HOME", 0, 4)] * 6 + [
    ("THE DOG RAN FAR HOME", 1, 5),  # a deletion / 1 sub + 4 del
    ("THE CAT RAN HOME", 1, 4),  # a substitution / 1 sub + 3 del
    ("NO", 4, 0),  # 1 sub + 3 insertions / correct
    ("THE DOG RAN HOME NO", 1, 4),  # a deletion / 4 deletions
]


def known_wer(ctc: bool) -> float:
    """The WER (%) every decoding method of the constructed model must score."""
    errors = sum(cut[2 if ctc else 1] for cut in KNOWN_CUTS)
    return 100.0 * errors / sum(len(cut[0].split()) for cut in KNOWN_CUTS)


@torch.no_grad()
def set_known_answer_weights(model, sp, margin: float = 20.0) -> None:
    """Decoder output = one-hot of the last token; the joiner ignores the encoder and maps the
    last token to the next token of KNOWN_HYP (blank after the last one) with a logit margin
    of ``margin``; the CTC head says KNOWN_CTC_HYP on every frame. Every search then has one
    overwhelmingly probable answer."""
    tokens = sp.encode(KNOWN_HYP)
    (ctc_token,) = sp.encode(KNOWN_CTC_HYP)
    vocab, decoder, joiner = model.decoder.vocab_size, model.decoder, model.joiner
    assert len(set(tokens)) == len(tokens), "KNOWN_HYP's tokens must be distinct"
    assert decoder.decoder_dim == joiner.decoder_proj.out_features == vocab
    following = dict.fromkeys(range(vocab), decoder.blank_id)
    following.update(zip(tokens, tokens[1:]))
    decoder.embedding.weight.copy_(torch.eye(vocab))
    decoder.conv.weight.zero_()  # grouped, 4 channels a group: keep the last token's channel
    for c in range(vocab):
        decoder.conv.weight[c, c % 4, -1] = 1.0
    joiner.encoder_proj.weight.zero_()
    joiner.encoder_proj.bias.zero_()
    joiner.decoder_proj.weight.copy_(5.0 * torch.eye(vocab))  # tanh(5) ~ 1
    joiner.decoder_proj.bias.zero_()
    start = margin * torch.nn.functional.one_hot(torch.tensor(tokens[0]), vocab).float()
    joiner.output_linear.bias.copy_(start)  # the empty history: the first token
    for y in range(vocab):
        joiner.output_linear.weight[:, y] = -start
        joiner.output_linear.weight[following[y], y] += margin
    if model.use_ctc:
        ctc_linear = model.ctc_output[1]
        ctc_linear.weight.zero_()
        ctc_linear.bias.zero_()
        ctc_linear.bias[ctc_token] = margin


def load_recipe_script(dataset: str):
    path = REPO / "egs" / dataset / "ASR" / "zipformer" / "decode.py"
    spec = importlib.util.spec_from_file_location(f"decode_{dataset}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_recipe_dir(
    root: Path, prefix: str, splits, use_ctc: bool = True, known_answer: bool = False
) -> dict:
    """Tiny BPE model, cut files with fbank for each split, and epoch-1/2.pt of a tiny model
    (random, or with ``known_answer`` the constructed one, with KNOWN_CUTS' references)."""
    rng = random.Random(0)
    sentences = [" ".join(rng.choice(WORDS).upper() for _ in range(6)) for _ in range(200)]
    (root / "text.txt").write_text("\n".join(sentences) + "\n")
    bpe_model = train_bpe_model(root / "text.txt", root / "data" / "lang_bpe_32", vocab_size=32)

    audio_dir = root / "audio"
    audio_dir.mkdir()
    recordings, supervisions = [], []
    # 10 cuts: the eval sampler's default bucket count needs at least that many.
    for i in range(NUM_CUTS):
        samples = np.random.default_rng(i).normal(0, 0.1, int(16000 * (0.5 + 0.1 * i)))
        path = audio_dir / f"utt{i}.wav"
        sf.write(path, samples.astype(np.float32), 16000)
        rec = Recording.from_file(path, recording_id=f"utt{i}")
        recordings.append(rec)
        supervisions.append(
            SupervisionSegment(
                id=f"utt{i}",
                recording_id=f"utt{i}",
                start=0,
                duration=rec.duration,
                text=KNOWN_CUTS[i][0] if known_answer else sentences[i],
            )
        )
    cuts = CutSet.from_manifests(
        recordings=RecordingSet.from_recordings(recordings),
        supervisions=SupervisionSet.from_segments(supervisions),
    )
    fbank_dir = root / "data" / "fbank"
    fbank_dir.mkdir(parents=True)
    cuts = cuts.compute_and_store_features(
        Fbank(), storage_path=fbank_dir / "feats", storage_type=LilcomChunkyWriter
    )
    for split in splits:
        cuts.to_file(fbank_dir / f"{prefix}_cuts_{split}.jsonl.gz")

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    params = AttributeDict(vars(parser.parse_args([])))
    params.update(
        model_size="tiny",
        decoder_dim=32,
        joiner_dim=32,
        use_ctc=use_ctc,
        vocab_size=32,
        blank_id=0,
        feature_dim=80,
        average_period=1,
    )
    torch.manual_seed(0)
    model = build_model(params)
    if known_answer:
        import sentencepiece

        set_known_answer_weights(model, sentencepiece.SentencePieceProcessor(str(bpe_model)))
    exp_dir = root / "zipformer" / "exp"
    for epoch in (1, 2):
        params.batch_idx_train = 10 * epoch
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.0 if known_answer else 0.01 * torch.randn_like(p))
        save_checkpoint(exp_dir / f"epoch-{epoch}.pt", model, model_avg=model, params=params)
    return {"exp_dir": exp_dir, "bpe_model": bpe_model, "manifest_dir": fbank_dir}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    torch.set_num_threads(1)
    return make_recipe_dir(root, "synth", ["dev", "test-synth", "test-human"])


def common_args(d, *extra):
    return [
        "--exp-dir", str(d["exp_dir"]), "--bpe-model", str(d["bpe_model"]),
        "--manifest-dir", str(d["manifest_dir"]), "--num-workers", "0",
        "--max-duration", "3", "--epoch", "2", "--avg", "1", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "method, suffix",
    [
        ("greedy_search", "epoch-2_avg-1_context-2_max-sym-per-frame-1_use-averaged-model"),
        (
            "modified_beam_search",
            "epoch-2_avg-1__modified_beam_search__beam-size-4_use-averaged-model",
        ),
        ("ctc_greedy_search", "epoch-2_avg-1__ctc_greedy_search_use-averaged-model"),
    ],
)
def test_decode_writes_icefall_files_for_every_test_set(synth_dir, method, suffix):
    script = load_recipe_script("synth")
    summary = script.run_decode(
        script.get_parser(),
        common_args(synth_dir, "--decoding-method", method),
        dataset_prefix="synth",
        defaults=script.get_params(),
    )
    assert list(summary) == ["dev", "test-synth", "test-human"]
    res_dir = synth_dir["exp_dir"] / method
    for test_set, (wer, stats) in summary.items():
        assert stats.num_cuts == NUM_CUTS
        assert stats.audio_seconds == pytest.approx(AUDIO_SECONDS)
        assert stats.rtf > 0
        recogs = (res_dir / f"recogs-{test_set}-{suffix}.txt").read_text()
        assert sorted(re.findall(r"^(utt\d+)-\d+:\tref=", recogs, re.M)) == sorted(
            f"utt{i}" for i in range(NUM_CUTS)
        )
        assert (res_dir / f"errs-{test_set}-{suffix}.txt").read_text().startswith("%WER")
        summary_lines = (res_dir / f"wer-summary-{test_set}-{suffix}.txt").read_text().splitlines()
        assert summary_lines[0] == "settings\tWER"
        assert summary_lines[1].split("\t")[1] == f"{wer:.2f}"
    assert list(res_dir.glob(f"log-decode-{suffix}*"))


def test_skip_scoring_and_test_set_choice(synth_dir):
    script = load_recipe_script("synth")
    args = common_args(
        synth_dir, "--test-sets", "test-human", "--skip-scoring", "1", "--use-averaged-model", "0"
    )
    summary = script.run_decode(script.get_parser(), args, "synth", script.get_params())
    assert list(summary) == ["test-human"] and summary["test-human"][0] is None
    res_dir = synth_dir["exp_dir"] / "greedy_search"
    names = {p.name for p in res_dir.iterdir()}
    suffix = "epoch-2_avg-1_context-2_max-sym-per-frame-1"
    assert f"recogs-test-human-{suffix}.txt" in names
    assert f"errs-test-human-{suffix}.txt" not in names


def test_model_flag_contradicting_the_checkpoint_is_rejected(synth_dir):
    script = load_recipe_script("synth")
    with pytest.raises(ValueError, match="--context-size 1 contradicts"):
        script.run_decode(
            script.get_parser(),
            common_args(synth_dir, "--context-size", "1"),
            "synth",
            script.get_params(),
        )
    # Repeating the checkpoint's own value is accepted.
    script.run_decode(
        script.get_parser(),
        common_args(synth_dir, "--context-size", "2", "--test-sets", "dev"),
        "synth",
        script.get_params(),
    )


def test_empty_or_textless_test_set_is_an_error_not_a_score(synth_dir, tmp_path):
    """A test set with no cuts (or no reference words) used to score WER 0.00 (or inf)."""
    from lhotse import CutSet

    manifests = tmp_path / "fbank"
    manifests.mkdir()
    cuts = CutSet.from_file(synth_dir["manifest_dir"] / "synth_cuts_dev.jsonl.gz").to_eager()
    CutSet.from_cuts([]).to_file(manifests / "synth_cuts_empty.jsonl.gz")
    textless = list(cuts)
    for cut in textless:
        for supervision in cut.supervisions:
            supervision.text = ""
    CutSet.from_cuts(textless).to_file(manifests / "synth_cuts_textless.jsonl.gz")
    script = load_recipe_script("synth")
    for name, message in (("empty", "has no cuts"), ("textless", "no reference words")):
        args = common_args(synth_dir, "--test-sets", name, "--use-averaged-model", "0")
        args[args.index("--manifest-dir") + 1] = str(manifests)
        with pytest.raises(ValueError, match=f"test set '{name}'.*{message}"):
            script.run_decode(script.get_parser(), args, "synth", script.get_params())
        res_dir = synth_dir["exp_dir"] / "greedy_search"
        assert not list(res_dir.glob(f"wer-summary-{name}-*"))


def test_missing_epoch_names_existing_ones(synth_dir):
    script = load_recipe_script("synth")
    args = common_args(synth_dir)
    args[args.index("--epoch") + 1] = "5"
    with pytest.raises(Exception, match=r"epochs available in .*: 1, 2"):
        script.run_decode(script.get_parser(), args, "synth", script.get_params())


@pytest.fixture(scope="module")
def known_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return make_recipe_dir(tmp_path_factory.mktemp("known"), "synth", ["dev"], known_answer=True)


def recognitions(path: Path) -> dict:
    """cut id -> hypothesis words, from a recogs-*.txt file."""
    found = re.findall(r"^(\S+):\thyp=(.*)$", path.read_text(), re.M)
    return {cut_id: " ".join(ast.literal_eval(hyp)) for cut_id, hyp in found}


@pytest.mark.parametrize(
    "method",
    [
        "greedy_search",
        "beam_search",
        "modified_beam_search",
        "fast_beam_search",
        "fast_beam_search_nbest",
        "ctc_greedy_search",
        "ctc_prefix_beam_search",
    ],
)
def test_every_method_scores_the_known_wer(known_dir, method):
    """decode.py with each method on the constructed model: every cut gets the constructed
    answer and the WER is the one counted by hand (17.95 % transducer, 94.87 % CTC)."""
    script = load_recipe_script("synth")
    summary = script.run_decode(
        script.get_parser(),
        common_args(known_dir, "--decoding-method", method, "--test-sets", "dev",
                    "--num-paths", "20", "--max-sym-per-frame", "2"),
        "synth",
        script.get_params(),
    )  # fmt: skip
    wer, stats = summary["dev"]
    ctc = method.startswith("ctc")
    assert stats.num_cuts == NUM_CUTS
    assert wer == pytest.approx(known_wer(ctc), abs=0.01)
    (recogs,) = (known_dir["exp_dir"] / method).glob("recogs-dev-*.txt")
    hyps = recognitions(recogs)
    assert len(hyps) == NUM_CUTS
    assert set(hyps.values()) == {KNOWN_CTC_HYP if ctc else KNOWN_HYP}
