"""egs/synth/ASR/conv_ctc end to end on a tiny made-up corpus (random fbank): train.py, the LM
stage's script, decode.py (greedy, beam, beam + LM), export.py (--jit 1 --onnx 1, onnxruntime
giving PyTorch's transcripts), streaming_decode.py (with full context equal to decode.py) and
the one-line LM errors. Slow (several script runs)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_synth import WORDS, _env, _write_split

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "egs" / "synth" / "ASR"
TEST_SETS = ("dev", "test-synth", "test-human")


def _run(script: str, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(RECIPE / script), *args]
    result = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from icefall_lite.data import train_bpe_model

    root = tmp_path_factory.mktemp("conv_ctc")
    fbank = root / "data" / "fbank"
    fbank.mkdir(parents=True)
    texts = _write_split(fbank, "train", 24, seed=1)
    for seed, split in enumerate(TEST_SETS, start=2):
        # 10 cuts: the eval sampler's default bucket count needs at least that many.
        _write_split(fbank, split, 10, seed=seed)
    transcripts = root / "data" / "transcripts.txt"
    transcripts.write_text("\n".join(texts + WORDS) + "\n")
    lang = root / "data" / "lang_bpe_30"
    train_bpe_model(transcripts, lang, vocab_size=30)
    common = ["--manifest-dir", str(fbank), "--bpe-model", str(lang / "bpe.model")]
    _run(
        "conv_ctc/train.py", root, *common, "--exp-dir", "exp", "--num-epochs", "2",
        "--max-duration", "8", "--num-buckets", "2", "--num-workers", "0",
        "--lr-decay-batches", "300",
        "--tensorboard", "0", "--average-period", "1", "--enable-spec-masks", "1",
    )  # fmt: skip
    _run(
        "local/train_ngram_lm.py", root, "--text", str(transcripts), "--bpe-model",
        str(lang / "bpe.model"), "--order", "3", "--out", "lm/tokens.arpa",
    )  # fmt: skip
    return {"root": root, "common": common, "lang": lang}


def _decode(d, *extra, script="conv_ctc/decode.py", check=True):
    args = [*d["common"], "--exp-dir", "exp", "--epoch", "2", "--avg", "1", "--max-duration", "8"]
    return _run(script, d["root"], *args, "--num-workers", "0", *extra, check=check)


def _recogs(path: Path) -> dict:
    lines = [line for line in path.read_text().splitlines() if "\thyp=" in line]
    return {line.split(":")[0]: line.split("\thyp=")[1] for line in lines}


def test_train_wrote_conv_ctc_checkpoints(trained):
    ckpt = torch.load(trained["root"] / "exp" / "epoch-2.pt", map_location="cpu")
    assert ckpt["model_family"] == "conv_ctc" and ckpt["optim"] == "novograd"
    assert any(k.startswith("encoder.blocks.") for k in ckpt["model"])


@pytest.mark.parametrize(
    "extra, method, suffix",
    [
        ((), "ctc_greedy_search", "epoch-2_avg-1__ctc_greedy_search_use-averaged-model"),
        (
            ("--decoding-method", "ctc_prefix_beam_search"),
            "ctc_prefix_beam_search",
            "epoch-2_avg-1__ctc_prefix_beam_search__beam-size-4_use-averaged-model",
        ),
        (
            ("--decoding-method", "ctc_prefix_beam_search", "--lm-type", "ngram",
             "--lm-path", "lm/tokens.arpa", "--lm-scale", "0.5", "--word-insertion-bonus", "1"),
            "ctc_prefix_beam_search",
            "epoch-2_avg-1__ctc_prefix_beam_search__beam-size-4_lm-ngram-scale-0.5-wib-1.0"
            "_use-averaged-model",
        ),
    ],
)  # fmt: skip
def test_decode_writes_the_icefall_files(trained, extra, method, suffix):
    _decode(trained, *extra)
    res = trained["root"] / "exp" / method
    for test_set in TEST_SETS:
        for kind in ("recogs", "errs", "wer-summary"):
            assert (res / f"{kind}-{test_set}-{suffix}.txt").is_file(), (kind, test_set)


def test_lm_errors_are_one_line(trained):
    missing = _decode(
        trained, "--decoding-method", "ctc_prefix_beam_search", "--lm-type", "ngram",
        "--lm-path", "lm/none.arpa", check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "no such ARPA file" in missing.stderr
    words = trained["root"] / "lm" / "words.arpa"
    words.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\tALPHA\n-0.3\t</s>\n\\end\\\n")
    mismatch = _decode(
        trained, "--decoding-method", "ctc_prefix_beam_search", "--lm-type", "ngram",
        "--lm-path", str(words), check=False,
    )  # fmt: skip
    assert mismatch.returncode == 1 and "does not match" in mismatch.stderr
    assert mismatch.stderr.strip().count("\n") == 0
    greedy = _decode(trained, "--lm-type", "ngram", "--lm-path", "lm/tokens.arpa", check=False)
    assert greedy.returncode == 1 and "--lm-type ngram works with" in greedy.stderr


def test_streaming_with_full_context_equals_decode(trained):
    _decode(trained)
    _decode(
        trained, "--chunk-frames", "60", "--left-context", "600", "--right-context", "600",
        script="conv_ctc/streaming_decode.py",
    )  # fmt: skip
    exp = trained["root"] / "exp"
    offline = _recogs(
        exp
        / "ctc_greedy_search"
        / "recogs-dev-epoch-2_avg-1__ctc_greedy_search_use-averaged-model.txt"
    )
    streamed = _recogs(
        exp / "streaming" / "ctc_greedy_search"
        / "recogs-dev-epoch-2_avg-1_chunk-60_left-600_right-600__ctc_greedy_search"
          "_use-averaged-model.txt"
    )  # fmt: skip
    assert offline and streamed == offline


def test_export_jit_and_onnx_give_the_pytorch_transcripts(trained):
    from lhotse import CutSet

    from icefall_lite.checkpoint import read_checkpoint, stored_params
    from icefall_lite.export.ctc import OnnxCtcModel
    from icefall_lite.models import build_model
    from icefall_lite.search import ctc_greedy_search

    root = trained["root"]
    _run(
        "conv_ctc/export.py", root, "--exp-dir", "exp", "--epoch", "2", "--avg", "1",
        "--tokens", str(trained["lang"] / "tokens.txt"), "--jit", "1", "--onnx", "1",
    )  # fmt: skip
    exp = root / "exp"
    checkpoint = read_checkpoint(exp / "pretrained.pt")
    model = build_model(stored_params(checkpoint))
    model.load_state_dict(checkpoint["model"])
    model.eval()
    cuts = CutSet.from_file(root / "data" / "fbank" / "synth_cuts_dev.jsonl.gz")
    feats = [torch.from_numpy(c.load_features()) for c in cuts]
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    x_lens = torch.tensor([f.size(0) for f in feats])
    with torch.no_grad():
        ref = ctc_greedy_search(model.ctc_output(model.forward_encoder(x, x_lens)[0]),
                                model.output_frames(x_lens))  # fmt: skip
        jit = torch.jit.load(str(exp / "jit_script.pt"))
        jit_out = ctc_greedy_search(*jit(x, x_lens))
    onnx_out = ctc_greedy_search(*OnnxCtcModel(exp / "ctc-epoch-2-avg-1.onnx")(x, x_lens))
    assert [r.tokens for r in jit_out] == [r.tokens for r in ref]
    assert [r.tokens for r in onnx_out] == [r.tokens for r in ref]
    assert (exp / "tokens.txt").is_file()

    # The one-file package (ASRModel.restore_from) holds the same model and tokens.
    from icefall_lite import ASRModel

    asr = ASRModel.restore_from(exp / "model-epoch-2-avg-1.icefall")
    assert asr.config["model_family"] == "conv_ctc"
    assert asr.tokens_text == (trained["lang"] / "tokens.txt").read_text()
    with torch.no_grad():
        packaged = ctc_greedy_search(
            asr.model.ctc_output(asr.model.forward_encoder(x, x_lens)[0]),
            asr.model.output_frames(x_lens),
        )
    assert [r.tokens for r in packaged] == [r.tokens for r in ref]


def test_decay_sized_to_a_run_shorter_than_the_warm_up_is_one_line(trained, tmp_path):
    # The recipe's default --lr-decay-batches 0 counts the batches before training; this tiny
    # corpus has far fewer steps than the 200 of warm-up, so the run must stop with one line.
    result = _run(
        "conv_ctc/train.py", trained["root"], *trained["common"], "--exp-dir", str(tmp_path),
        "--num-epochs", "2", "--max-duration", "8", "--num-buckets", "2", "--num-workers", "0",
        "--tensorboard", "0", check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "--lr-decay-batches 0: the run has only" in last and "batches per epoch" in last
    assert not list(tmp_path.glob("epoch-*.pt"))
