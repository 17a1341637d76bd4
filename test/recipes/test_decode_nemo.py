"""decode.py --nemo-manifest: a NeMo manifest decoded as a test set, with the usual result files
and a NeMo-style output manifest with pred_text."""

import json

import pytest
import torch
from test_decode_synth import (
    KNOWN_CUTS,
    KNOWN_HYP,
    NUM_CUTS,
    common_args,
    known_wer,
    load_recipe_script,
    make_recipe_dir,
)


@pytest.fixture(scope="module")
def known_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return make_recipe_dir(tmp_path_factory.mktemp("known"), "synth", ["dev"], known_answer=True)


def test_decode_a_nemo_manifest(known_dir, tmp_path):
    audio_dir = known_dir["exp_dir"].parents[1] / "audio"
    lines = [
        {
            "audio_filepath": str(audio_dir / f"utt{i}.wav"),
            "duration": int(16000 * (0.5 + 0.1 * i)) / 16000,
            "text": KNOWN_CUTS[i][0],
        }
        for i in range(NUM_CUTS)
    ]
    bad = {"audio_filepath": str(audio_dir / "missing.wav"), "duration": 1.0, "text": "NO"}
    manifest = tmp_path / "mine.json"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines[:3] + [bad] + lines[3:]))

    script = load_recipe_script("synth")
    summary = script.run_decode(
        script.get_parser(),
        common_args(known_dir, "--test-sets", "", "--nemo-manifest", str(manifest)),
        "synth",
        script.get_params(),
    )
    wer, stats = summary["mine"]
    assert list(summary) == ["mine"] and stats.num_cuts == NUM_CUTS
    assert wer == pytest.approx(known_wer(False), abs=0.01)
    res_dir = known_dir["exp_dir"] / "greedy_search"
    (output,) = res_dir.glob("nemo-mine-*.json")
    (recogs,) = res_dir.glob("recogs-mine-*.txt")
    assert output.name[len("nemo-") : -len(".json")] == recogs.name[len("recogs-") : -len(".txt")]
    written = [json.loads(line) for line in output.read_text().splitlines()]
    # The input's usable lines, in input order, each with the model's answer.
    assert [{k: v for k, v in w.items() if k != "pred_text"} for w in written] == lines
    assert {w["pred_text"] for w in written} == {KNOWN_HYP}
