"""egs/librispeech/ASR/conv_ctc (links to the synth scripts, its own recipe_defaults.py): NeMo's
QuartzNet defaults, and train.py + decode.py end to end on a tiny corpus in LibriSpeech's
layout (librispeech_cuts_<split>.jsonl.gz, train-clean-100 with --full-libri 0, dev-clean +
dev-other validation, test-clean + test-other decoding). Slow (two script runs)."""

import subprocess
import sys
from pathlib import Path

import pytest
from test_train_synth import WORDS, _env, _write_split

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "egs" / "librispeech" / "ASR"


def _run(script: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(RECIPE / script), *args]
    result = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_help_shows_the_librispeech_defaults():
    out = _run("conv_ctc/train.py", REPO_ROOT, "--help").stdout
    assert "quartznet15x5" in out and "--full-libri" in out


def test_trains_and_decodes_on_librispeech_layout(tmp_path):
    from icefall_lite.data import train_bpe_model

    fbank = tmp_path / "data" / "fbank"
    fbank.mkdir(parents=True)
    splits = {"train-clean-100": 24, "dev-clean": 10, "dev-other": 10}
    splits.update({"test-clean": 10, "test-other": 10})
    texts = []
    for seed, (split, count) in enumerate(splits.items(), start=1):
        texts += _write_split(fbank, split, count, seed=seed)
        # The helper writes the synth name; the feature paths inside are absolute.
        (fbank / f"synth_cuts_{split}.jsonl.gz").rename(
            fbank / f"librispeech_cuts_{split}.jsonl.gz"
        )
    transcripts = tmp_path / "data" / "transcripts.txt"
    transcripts.write_text("\n".join(texts + WORDS) + "\n")
    train_bpe_model(transcripts, tmp_path / "data" / "lang_bpe_500", vocab_size=30)

    train = _run(
        "conv_ctc/train.py", tmp_path, "--full-libri", "0", "--conv-preset", "cpu",
        "--num-epochs", "1", "--max-duration", "8", "--num-buckets", "2", "--num-workers", "0",
        "--lr-decay-batches", "1100", "--tensorboard", "0", "--average-period", "1",
        "--enable-musan", "0",
    )  # fmt: skip
    log = train.stderr
    assert "librispeech_cuts_train-clean-100.jsonl.gz" in log or "train-clean-100" in log
    assert (tmp_path / "conv_ctc" / "exp" / "epoch-1.pt").is_file()

    _run(
        "conv_ctc/decode.py", tmp_path, "--epoch", "1", "--avg", "1", "--max-duration", "8",
        "--num-workers", "0", "--decoding-method", "ctc_greedy_search", "--use-averaged-model", "0",
    )  # fmt: skip
    out = tmp_path / "conv_ctc" / "exp" / "ctc_greedy_search"
    for test_set in ("test-clean", "test-other"):
        summaries = list(out.glob(f"wer-summary-{test_set}-epoch-1_avg-1*.txt"))
        assert len(summaries) == 1, sorted(p.name for p in out.iterdir())
        assert summaries[0].read_text().splitlines()[1].split("\t")[-1].replace(".", "").isdigit()
