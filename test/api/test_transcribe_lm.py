"""transcribe(lm_path=...): n-gram LM shallow fusion as decode.py's --lm-type ngram does it, in
every path (batched files, long-audio windows, streaming), the LM read once, and one clear
error for each bad setting."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import chirp
from test_cli import _run

from icefall_lite.api.asr_model import SAMPLE_RATE
from icefall_lite.audio import compute_fbank, read_audio
from icefall_lite.data import load_bpe_model
from icefall_lite.errors import UsageError
from icefall_lite.lm import build_token_lm, load_token_lm
from icefall_lite.search.ctc import ctc_prefix_beam_search
from icefall_lite.search.lm_fusion import LmFusion
from icefall_lite.search.modified_beam_search import modified_beam_search
from icefall_lite.streaming import encode_utterances


@pytest.fixture(scope="module")
def arpa(lang, tmp_path_factory) -> dict:
    """'text': a 3-gram of the (uniformly random) training text of the BPE model; 'skewed':
    a 3-gram of text with two words only, which at a large scale pulls every search towards
    their tokens."""
    root = tmp_path_factory.mktemp("lm")
    text = lang["bpe_model"].parent.parent / "text.txt"
    skewed = root / "skewed.txt"
    skewed.write_text("GOOD BYE\n" * 50 + "GOOD\n" * 5)
    return {
        "text": build_token_lm(text, lang["bpe_model"], 3, root / "text.arpa"),
        "skewed": build_token_lm(skewed, lang["bpe_model"], 3, root / "skewed.arpa"),
    }


def _reference(model, wavs, method, fusion):
    """The library's search function on the encoder output of each file alone, with the given
    LmFusion (beam 4, decode.py's default): token ids per file."""
    out = []
    for wav in wavs:
        feats = compute_fbank([read_audio(wav)], SAMPLE_RATE)[0]
        x, lens = feats.unsqueeze(0), torch.tensor([feats.size(0)])
        encoder_out, encoder_out_lens = encode_utterances(
            model.model, x, lens, model.causal, model.chunk_size
        )
        if method == "ctc_prefix_beam_search":
            log_probs = model.model.ctc_output(encoder_out)
            (result,) = ctc_prefix_beam_search(log_probs, encoder_out_lens, 4, fusion=fusion)
        else:
            (result,) = modified_beam_search(
                model.model, encoder_out, encoder_out_lens, 4, fusion=fusion
            )
        out.append(list(result.tokens))
    return out


def _token_ids(model, wavs, **options):
    hyps = model.transcribe([str(w) for w in wavs], batch_size=1, return_hypotheses=True,
                            **options)  # fmt: skip
    return [list(h.token_ids) for h in hyps]


@pytest.mark.parametrize("kind, method", [("ctc", "ctc_prefix_beam_search"),
                                          ("offline", "modified_beam_search")])  # fmt: skip
def test_transcribe_with_lm_equals_the_fused_search(models, wavs, lang, arpa, kind, method):
    model = models[kind]
    sp = load_bpe_model(lang["bpe_model"])
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    scale, bonus = 1.5, 0.5
    fusion = LmFusion(load_token_lm(arpa["skewed"], pieces), scale, bonus)
    want = _reference(model, wavs, method, fusion)
    got = _token_ids(model, wavs, decoding_method=method, lm_path=arpa["skewed"],
                     lm_scale=scale, word_insertion_bonus=bonus)  # fmt: skip
    assert got == want
    # The fusion is what makes them equal: without it the search says something else.
    assert _reference(model, wavs, method, None) != want
    # The bonus is passed through too.
    other = LmFusion(load_token_lm(arpa["skewed"], pieces), scale, 10.0)
    assert _reference(model, wavs, method, other) != want
    # A batch of several files gives the same as one at a time (a causal model's padding is
    # masked; the full-context models' batches are padded, as in decode.py's).
    if kind == "ctc":
        same = [wavs[1], wavs[1]]
        assert model.transcribe(same, batch_size=2, decoding_method=method,
                                lm_path=arpa["skewed"], lm_scale=scale,
                                word_insertion_bonus=bonus) == [
            model.transcribe(str(wavs[1]), decoding_method=method, lm_path=arpa["skewed"],
                             lm_scale=scale, word_insertion_bonus=bonus)[0]] * 2  # fmt: skip


@pytest.mark.parametrize("kind, method", [("ctc", "ctc_prefix_beam_search"),
                                          ("causal", "modified_beam_search")])  # fmt: skip
def test_a_strong_lm_changes_the_output(models, wavs, arpa, kind, method):
    model = models[kind]
    plain = model.transcribe([str(w) for w in wavs], decoding_method=method)
    fused = model.transcribe([str(w) for w in wavs], decoding_method=method,
                             lm_path=arpa["skewed"], lm_scale=5.0)  # fmt: skip
    assert fused != plain
    # lm_scale 0 is no LM at all.
    assert model.transcribe([str(w) for w in wavs], decoding_method=method,
                            lm_path=arpa["skewed"], lm_scale=0.0) == plain  # fmt: skip


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.concatenate([chirp(2.0, i) for i in range(4)]), 16000)
    return path


@pytest.mark.parametrize("kind, method, mode", [
    ("ctc", "ctc_prefix_beam_search", "chunked"),
    ("offline", "modified_beam_search", "chunked"),
    ("causal", "modified_beam_search", "chunked"),
    ("causal", "modified_beam_search", "streaming"),
])  # fmt: skip
def test_long_audio_paths_fuse_the_lm(models, arpa, long_wav, kind, method, mode):
    model = models[kind]
    long = dict(long_audio=mode, long_audio_seconds=1.0, chunk_seconds=3.0, overlap_seconds=1.0)
    lm = dict(lm_path=arpa["skewed"], lm_scale=5.0)
    plain = model.transcribe(long_wav, decoding_method=method, **long)[0]
    fused = model.transcribe(long_wav, decoding_method=method, **long, **lm)[0]
    assert fused and fused != plain
    if mode == "streaming":
        # Without endpointing (which restarts the search, LM state included), streaming with
        # the LM is the whole-utterance fused search, chunk by chunk.
        whole = model.transcribe(long_wav, decoding_method=method, **lm)[0]
        assert model.transcribe(long_wav, decoding_method=method, endpoint_seconds=0.0,
                                **long, **lm)[0] == whole  # fmt: skip


def test_the_lm_is_read_once_per_file_and_weights(models, wavs, arpa, monkeypatch):
    import icefall_lite.lm.token_lm as token_lm

    model = models["ctc"]
    model._lm_fusions.clear()
    reads = []
    real = token_lm.read_arpa
    monkeypatch.setattr(token_lm, "read_arpa", lambda *a: reads.append(a) or real(*a))
    lm = dict(decoding_method="ctc_prefix_beam_search", lm_path=arpa["text"])
    first = model.transcribe(str(wavs[0]), **lm)
    assert model.transcribe(str(wavs[0]), **lm) == first
    list(model.transcribe_generator([str(wavs[1])], **lm))
    assert len(reads) == 1
    assert model.lm_fusion(arpa["text"]) is model.lm_fusion(str(arpa["text"]), 0.3, 0.0)
    assert model.lm_fusion(arpa["text"], 0.5).scale == 0.5
    assert len(reads) == 2  # another scale: another entry


def test_manifest_output_uses_the_lm(models, wavs, arpa, tmp_path):
    model = models["ctc"]
    manifest = tmp_path / "m.json"
    lines = [{"audio_filepath": str(w), "duration": sf.info(w).duration} for w in wavs]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    lm = dict(decoding_method="ctc_prefix_beam_search", lm_path=arpa["skewed"], lm_scale=5.0)
    out = model.transcribe_manifest(manifest, **lm)
    pred = [json.loads(x)["pred_text"] for x in out.read_text().splitlines()]
    assert pred == model.transcribe([str(w) for w in wavs], **lm)


def test_bad_lm_settings_are_one_clear_error(models, wavs, arpa, tmp_path):
    ctc, transducer = models["ctc"], models["offline"]
    wav = str(wavs[0])
    lm = arpa["text"]
    cannot = [(ctc, "ctc_greedy_search"), (transducer, "greedy_search"),
              (transducer, "beam_search"), (transducer, "fast_beam_search")]  # fmt: skip
    for model, method in cannot:
        can = "modified_beam_search or ctc_prefix_beam_search"
        message = f"lm_path: .*works with decoding_method {can}, not {method}$"
        with pytest.raises(UsageError, match=message):
            model.transcribe(wav, decoding_method=method, lm_path=lm)
    with pytest.raises(UsageError, match="lm_path: .*not greedy_search"):  # the default method
        transducer.transcribe(wav, lm_path=lm)
    with pytest.raises(UsageError, match="lm_scale must be >= 0, got -0.5"):
        ctc.transcribe(wav, decoding_method="ctc_prefix_beam_search", lm_path=lm, lm_scale=-0.5)
    with pytest.raises(UsageError, match="lm_scale must be a number"):
        ctc.transcribe(wav, decoding_method="ctc_prefix_beam_search", lm_path=lm, lm_scale="0.3")
    missing = tmp_path / "none.arpa"
    manifest = tmp_path / "set.json"
    manifest.write_text(json.dumps({"audio_filepath": wav, "duration": 1.0}) + "\n")
    with pytest.raises(UsageError, match=f"lm_path {missing}: no such ARPA file"):
        ctc.transcribe(wav, decoding_method="ctc_prefix_beam_search", lm_path=missing)
    broken = tmp_path / "broken.arpa"
    broken.write_text("not an ARPA file\n")
    with pytest.raises(UsageError, match=f"lm_path {broken}"):
        ctc.transcribe(wav, decoding_method="ctc_prefix_beam_search", lm_path=broken)
    words = tmp_path / "words.arpa"
    words.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\tALPHA\n-0.3\t</s>\n\\end\\\n")
    with pytest.raises(UsageError, match=f"lm_path {words}: its vocabulary does not match"):
        list(ctc.transcribe_generator(wav, decoding_method="ctc_prefix_beam_search",
                                      lm_path=words))  # fmt: skip
    with pytest.raises(UsageError, match=f"lm_path {missing}"):
        ctc.transcribe_manifest(manifest, decoding_method="ctc_prefix_beam_search",
                                lm_path=missing)  # fmt: skip


def test_streaming_without_lm_support_is_refused(models, arpa, long_wav, monkeypatch):
    # Every streaming search that can run with an LM method fuses it today; a streaming
    # search that could not would be refused, never silently run without the LM.
    import icefall_lite.streaming.search as streaming_search

    monkeypatch.setattr(streaming_search, "STREAMING_LM_METHODS", ())
    with pytest.raises(UsageError, match="lm_path with long audio: .*cannot fuse an LM"):
        models["causal"].transcribe(long_wav, decoding_method="modified_beam_search",
                                    long_audio="streaming", long_audio_seconds=1.0,
                                    lm_path=arpa["text"])  # fmt: skip


def test_cli_flags(models, packages, wavs, arpa, tmp_path):
    lm = dict(lm_path=arpa["skewed"], lm_scale=5.0, word_insertion_bonus=0.5)
    expected = models["ctc"].transcribe([str(w) for w in wavs[:2]],
                                        decoding_method="ctc_prefix_beam_search", **lm)  # fmt: skip
    flags = ["--decoding-method", "ctc_prefix_beam_search", "--lm-path", arpa["skewed"],
             "--lm-scale", "5.0", "--word-insertion-bonus", "0.5"]  # fmt: skip
    proc = _run("--model", packages["ctc"], *flags, wavs[0], wavs[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{w}\t{t}" for w, t in zip(wavs[:2], expected)]
    missing = tmp_path / "none.arpa"
    proc = _run("--model", packages["ctc"], "--decoding-method", "ctc_prefix_beam_search",
                "--lm-path", missing, wavs[0])  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert f"--lm-path {missing}: no such ARPA file" in lines[0]


def test_pretrained_py_fuses_through_the_api(models, checkpoints, lang, wavs, arpa, capsys):
    from icefall_lite.cli.pretrained import pretrained_parser, run_pretrained

    files = [str(w) for w in wavs[:2]]
    expected = models["ctc"].transcribe(files, decoding_method="ctc_prefix_beam_search",
                                        lm_path=arpa["skewed"], lm_scale=5.0)  # fmt: skip
    argv = ["--checkpoint", str(checkpoints["ctc"]), "--tokens", str(lang["tokens"]),
            "--decoding-method", "ctc_prefix_beam_search", "--lm-type", "ngram",
            "--lm-path", str(arpa["skewed"]), "--lm-scale", "5.0"]  # fmt: skip
    assert run_pretrained(pretrained_parser("test"), argv + files) == 0
    printed = capsys.readouterr().out
    assert printed.split("\n\n")[:2] == [f"{f}:\n{t}" for f, t in zip(files, expected)]
    argv[argv.index(str(arpa["skewed"]))] = "none.arpa"
    with pytest.raises(UsageError, match="--lm-path none.arpa: no such ARPA file"):
        run_pretrained(pretrained_parser("test"), argv + files)
