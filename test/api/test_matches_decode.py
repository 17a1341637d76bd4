"""transcribe() gives what decode.py gives for the same model and method (decode.py reading the
same files through a NeMo manifest, fbank on the fly, one cut per batch)."""

import importlib.util
import json
from pathlib import Path

import pytest
import soundfile as sf
from conftest import chirp

from icefall_lite import ASRModel

REPO = Path(__file__).resolve().parents[2]


def _decode_script():
    path = REPO / "egs" / "synth" / "ASR" / "zipformer" / "decode.py"
    spec = importlib.util.spec_from_file_location("decode_synth_api", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "kind, method, full_context",
    [("offline", "greedy_search", False), ("causal", "greedy_search", False),
     ("causal", "modified_beam_search", False), ("offline", "ctc_greedy_search", False),
     ("causal", "greedy_search", True), ("causal", "ctc_greedy_search", True)],
)  # fmt: skip
def test_transcribe_equals_decode_py(checkpoints, lang, tmp_path, kind, method, full_context):
    """full_context=True against decode.py --chunk-size -1 --left-context-frames -1 (without
    it a causal model is decoded with its checkpoint's streaming chunks by both)."""
    # Files of one length: decode.py's sampler batches cuts, and a full-context Zipformer's
    # last frames depend on the padding of a shorter cut in the batch (see test_transcribe).
    wavs = []
    for i in range(4):
        wavs.append(tmp_path / f"s{i}.wav")
        sf.write(wavs[-1], chirp(1.5, i + 5), 16000)
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "epoch-1.pt").symlink_to(checkpoints[kind])
    manifest = tmp_path / "set.json"
    lines = [{"audio_filepath": str(w), "duration": sf.info(w).duration, "text": "HELLO"}
             for w in wavs]  # fmt: skip
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    script = _decode_script()
    argv = [
        "--exp-dir", str(exp), "--bpe-model", str(lang["bpe_model"]), "--epoch", "1",
        "--avg", "1", "--use-averaged-model", "0", "--test-sets", "", "--nemo-manifest",
        str(manifest), "--max-duration", "3", "--num-workers", "0", "--decoding-method", method,
        "--beam-size", "2", "--manifest-dir", str(tmp_path),
    ]  # fmt: skip
    if full_context:
        argv += ["--chunk-size", "-1", "--left-context-frames", "-1"]
    script.run_decode(script.get_parser(), argv, "synth", script.get_params())
    (out,) = (exp / method).glob("nemo-set-*.json")
    decoded = {json.loads(x)["audio_filepath"]: json.loads(x)["pred_text"]
               for x in out.read_text().splitlines()}  # fmt: skip

    model = ASRModel.from_checkpoint(checkpoints[kind], lang["tokens"], lang["bpe_model"])
    texts = model.transcribe([str(w) for w in wavs], batch_size=1, decoding_method=method,
                             beam_size=2, full_context=full_context)  # fmt: skip
    assert texts == [decoded[str(w)] for w in wavs]
    assert any(texts)
    if full_context:  # the setting must matter on these inputs, or the test could not fail
        streamed = model.transcribe([str(w) for w in wavs], batch_size=1,
                                    decoding_method=method, beam_size=2)  # fmt: skip
        assert streamed != texts
