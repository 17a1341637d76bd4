"""python -m icefall_lite.transcribe: text and JSON output, wav.scp, NeMo manifests, and one
clear line for bad input."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[2]


def _run(*args, cwd=None, env=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "icefall_lite.transcribe", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env)  # fmt: skip


def test_files_json_scp_and_manifest(models, packages, wavs, tmp_path):
    expected = models["causal"].transcribe([str(w) for w in wavs[:2]])
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    proc = _run("--model", packages["causal"], wavs[0], bad, wavs[1])
    assert proc.returncode == 1  # one unreadable file, the others transcribed
    assert proc.stdout.splitlines() == [
        f"{wavs[0]}\t{expected[0]}", f"{bad}\t<unreadable, see above>", f"{wavs[1]}\t{expected[1]}"
    ]  # fmt: skip
    assert "bad.wav: cannot read it as audio" in proc.stderr

    scp = tmp_path / "wav.scp"
    scp.write_text(f"a {wavs[0]}\nb {wavs[1]}\n")
    proc = _run("--model", packages["causal"], "--json", "--wav-scp", scp)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [r["audio"] for r in records] == ["a", "b"]
    assert [r["text"] for r in records] == expected
    assert records[0]["words"] and len(records[0]["timestamps"]) == len(records[0]["tokens"])

    manifest = tmp_path / "m.json"
    lines = [{"audio_filepath": str(w), "duration": sf.info(w).duration} for w in wavs[:2]]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out.json"
    proc = _run("--model", packages["causal"], "--manifest", manifest, "--output-manifest", out)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["pred_text"] for x in out.read_text().splitlines()] == expected


def test_bad_model_and_flags_are_one_line(packages, model_dir, wavs, tmp_path):
    truncated = tmp_path / "t.icefall"
    truncated.write_bytes(packages["offline"].read_bytes()[:1000])
    for args, message in (
        (["--model", truncated, wavs[0]], "t.icefall: not a model package"),
        (["--model", "nope", wavs[0]], "no model named 'nope'.*available: causal, ctc, offline"),
        (["--model", packages["offline"]], "nothing to transcribe"),
        (["--model", packages["ctc"], "--decoding-method", "greedy_search", wavs[0]], "CTC-only"),
    ):
        proc = _run(*args, env={"ICEFALL_LITE_MODELS": str(model_dir)})
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("icefall-lite-transcribe: error: ")
        assert re.search(message, lines[0]), lines[0]
