import pytest

from icefall_lite.data.tokenizer import load_bpe_model, train_bpe_model, unencodable_characters


def test_bpe_layout_matches_icefall(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("HELLO WORLD\nGOOD MORNING WORLD\nHELLO AGAIN\n" * 20)
    model = train_bpe_model(text, tmp_path / "lang_bpe_16", vocab_size=16)
    sp = load_bpe_model(model)
    assert sp.get_piece_size() == 16
    lines = (tmp_path / "lang_bpe_16" / "tokens.txt").read_text().splitlines()
    assert lines[:3] == ["<blk> 0", "<sos/eos> 1", "<unk> 2"]
    assert len(lines) == 16
    assert sp.decode(sp.encode("HELLO WORLD")) == "HELLO WORLD"
    assert unencodable_characters(sp, ["HELLO Ñ WORLD"]) == ["Ñ"]


def test_missing_inputs_give_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="transcript file"):
        train_bpe_model(tmp_path / "none.txt", tmp_path / "lang", 20)
    with pytest.raises(FileNotFoundError, match="BPE stage"):
        load_bpe_model(tmp_path / "lang" / "bpe.model")
