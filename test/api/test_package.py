"""The one-file package: save/restore round trip, weights-only loading, and what a broken or
foreign package is told."""

import io
import json
import zipfile

import pytest
import torch

from icefall_lite.api import ASRModel, PackageError, read_package


def _rewrite(src, dst, drop=(), replace=None):
    """Copy a package, leaving out members and replacing some (name -> bytes)."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            zout.writestr(name, replace.get(name, zin.read(name)))
    return dst


def test_save_restore_round_trip(models, packages, wavs, tmp_path):
    model = models["offline"]
    again = ASRModel.restore_from(model.save_to(tmp_path / "again.icefall"))
    for (name, a), b in zip(model.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert again.config == model.config and again.symbols == model.symbols
    assert again.bpe_model == model.bpe_model and again.bpe_model  # bpe.model travels too
    files = [str(w) for w in wavs]
    assert again.transcribe(files) == model.transcribe(files)
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed


def test_package_holds_config_tokens_and_tensors_only(packages):
    with zipfile.ZipFile(packages["causal"]) as zf:
        names = set(zf.namelist())
        config = json.loads(zf.read("config.json"))
        weights = torch.load(io.BytesIO(zf.read("model.pt")), weights_only=True)
    assert {"config.json", "model.pt", "tokens.txt", "bpe.model"} <= names
    assert config["model_family"] == "zipformer" and config["format"] == "icefall-lite-model"
    assert config["model_params"]["causal"] is True and config["model_params"]["vocab_size"] == 32
    assert config["features"]["num_mel_bins"] == 80 and config["features"]["sample_rate"] == 16000
    assert all(isinstance(v, torch.Tensor) for v in weights.values())


def test_unknown_model_family_is_refused(packages, tmp_path):
    with zipfile.ZipFile(packages["offline"]) as zf:
        config = json.loads(zf.read("config.json"))
    config["model_family"] = "wav2letter_9000"
    bad = _rewrite(packages["offline"], tmp_path / "bad.icefall",
                   replace={"config.json": json.dumps(config).encode()})  # fmt: skip
    with pytest.raises(PackageError, match="unknown model family 'wav2letter_9000'.*zipformer"):
        ASRModel.restore_from(bad)


def test_pickled_code_in_weights_is_refused(packages, tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (print, ("this must never run",))

    buffer = io.BytesIO()
    torch.save({"w": Sneaky()}, buffer)
    bad = _rewrite(packages["offline"], tmp_path / "pickle.icefall",
                   replace={"model.pt": buffer.getvalue()})  # fmt: skip
    with pytest.raises(PackageError, match="model.pt cannot be read safely"):
        read_package(bad)


@pytest.mark.parametrize("member", ["config.json", "model.pt", "tokens.txt"])
def test_a_missing_member_is_named(packages, tmp_path, member):
    bad = _rewrite(packages["offline"], tmp_path / "incomplete.icefall", drop=(member,))
    with pytest.raises(PackageError, match=f"incomplete model package: {member} missing"):
        ASRModel.restore_from(bad)


def test_broken_packages_get_one_clear_error(packages, tmp_path):
    data = packages["offline"].read_bytes()
    truncated = tmp_path / "truncated.icefall"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(PackageError, match="truncated.icefall: not a model package"):
        ASRModel.restore_from(truncated)
    with pytest.raises(PackageError, match="no such model package"):
        ASRModel.restore_from(tmp_path / "absent.icefall")
    bad_json = _rewrite(packages["offline"], tmp_path / "json.icefall",
                        replace={"config.json": b"{not json"})  # fmt: skip
    with pytest.raises(PackageError, match="config.json is not valid JSON"):
        ASRModel.restore_from(bad_json)
    other = {k: v.clone() for k, v in read_package(packages["causal"]).state_dict.items()}
    other.pop(next(iter(other)))
    buffer = io.BytesIO()
    torch.save(other, buffer)
    wrong = _rewrite(packages["causal"], tmp_path / "wrong.icefall",
                     replace={"model.pt": buffer.getvalue()})  # fmt: skip
    with pytest.raises(PackageError, match="model.pt does not fit the model config.json"):
        ASRModel.restore_from(wrong)


def test_from_pretrained_resolves_names_folders_and_files(packages, model_dir, tmp_path):
    assert ASRModel.list_available_models([model_dir]) == ["causal", "ctc", "offline"]
    by_name = ASRModel.from_pretrained("causal", model_dirs=[model_dir])
    assert by_name.causal and by_name.model_family == "zipformer"
    assert not ASRModel.from_pretrained(packages["offline"]).causal  # a file
    single = tmp_path / "single"
    single.mkdir()
    (single / "x.icefall").write_bytes(packages["ctc"].read_bytes())
    assert ASRModel.from_pretrained(single).default_decoding_method() == "ctc_greedy_search"
    with pytest.raises(ValueError, match=r"no model named 'nope'.*available: causal, ctc, offline"):
        ASRModel.from_pretrained("nope", model_dirs=[model_dir])
    with pytest.raises(ValueError, match="expected one \\*.icefall model package"):
        ASRModel.from_pretrained(model_dir)  # three of them: which one?


def test_from_pretrained_reads_the_environment(packages, model_dir, monkeypatch):
    monkeypatch.setenv("ICEFALL_LITE_MODELS", str(model_dir))
    assert "offline" in ASRModel.list_available_models()
    assert not ASRModel.from_pretrained("offline").causal
