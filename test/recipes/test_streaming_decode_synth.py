"""End-to-end: zipformer/streaming_decode.py on a tiny causal model and a few cuts writes
decode.py's result files, and its transcripts equal decode.py's simulated streaming ones."""

import argparse
import importlib.util
import re
from pathlib import Path

import pytest
import torch
from test_decode_synth import make_recipe_dir

from icefall_lite.checkpoint import save_checkpoint
from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.utils import AttributeDict

REPO = Path(__file__).resolve().parents[2]
SUFFIX = "epoch-2_avg-1_chunk-16_left-context-64_context-2_max-sym-per-frame-1"


def load_script(name: str):
    path = REPO / "egs" / "synth" / "ASR" / "zipformer" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"synth_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_streaming")
    d = make_recipe_dir(root, "synth", ["dev", "test-human"], use_ctc=False)
    # Replace the checkpoints by those of a causal model with decisive outputs.
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    params = AttributeDict(vars(parser.parse_args(["--causal", "1"])))
    params.update(model_size="tiny", decoder_dim=32, joiner_dim=32, vocab_size=32, blank_id=0,
                  feature_dim=80, average_period=1)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(params)
    with torch.no_grad():
        model.joiner.encoder_proj.weight.mul_(30.0)
        model.joiner.output_linear.bias.zero_()
    for epoch in (1, 2):
        params.batch_idx_train = 10 * epoch
        save_checkpoint(d["exp_dir"] / f"epoch-{epoch}.pt", model, model_avg=model, params=params)
    return d


def args(d, *extra):
    return [
        "--exp-dir", str(d["exp_dir"]), "--bpe-model", str(d["bpe_model"]),
        "--manifest-dir", str(d["manifest_dir"]), "--num-workers", "0", "--max-duration", "3",
        "--epoch", "2", "--avg", "1", "--use-averaged-model", "0",
        "--chunk-size", "16", "--left-context-frames", "64", "--test-sets", "dev,test-human",
        *extra,
    ]  # fmt: skip


def hypotheses(recogs: str) -> dict:
    return dict(re.findall(r"^(utt\d+)-\d+:\thyp=(.*)$", recogs, re.M))


def test_streaming_decode_writes_decode_files(causal_dir):
    script = load_script("streaming_decode")
    summary = script.run_streaming_decode(
        script.get_parser(), args(causal_dir, "--num-decode-streams", "3"), "synth",
        script.get_params(),
    )  # fmt: skip
    assert list(summary) == ["dev", "test-human"]
    res_dir = causal_dir["exp_dir"] / "streaming" / "greedy_search"
    for test_set, (wer, stats) in summary.items():
        # streams joined and left: full batches of 3, and smaller ones
        assert max(stats.chunk_batch_sizes) == 3 and min(stats.chunk_batch_sizes) < 3
        recogs = (res_dir / f"recogs-{test_set}-{SUFFIX}.txt").read_text()
        hyps = hypotheses(recogs)
        assert sorted(hyps) == sorted(f"utt{i}" for i in range(10))
        assert any(h.strip() for h in hyps.values())
        assert (res_dir / f"errs-{test_set}-{SUFFIX}.txt").read_text().startswith("%WER")
        assert (res_dir / f"wer-summary-{test_set}-{SUFFIX}.txt").is_file()


def test_non_causal_model_is_refused(tmp_path):
    d = make_recipe_dir(tmp_path, "synth", ["dev"], use_ctc=False)
    script = load_script("streaming_decode")
    with pytest.raises(ValueError, match="not trained with --causal 1"):
        script.run_streaming_decode(script.get_parser(), args(d), "synth", script.get_params())


def test_streaming_transcripts_equal_simulated_streaming(causal_dir):
    streaming = load_script("streaming_decode")
    streaming.run_streaming_decode(
        streaming.get_parser(), args(causal_dir), "synth", streaming.get_params()
    )
    decode = load_script("decode")
    decode.run_decode(decode.get_parser(), args(causal_dir), "synth", decode.get_params())
    exp = causal_dir["exp_dir"]
    for test_set in ("dev", "test-human"):
        name = f"recogs-{test_set}-{SUFFIX}.txt"
        chunkwise = hypotheses((exp / "streaming" / "greedy_search" / name).read_text())
        simulated = hypotheses((exp / "greedy_search" / name).read_text())
        assert chunkwise == simulated
