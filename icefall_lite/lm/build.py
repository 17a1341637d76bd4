"""Building the token-level n-gram LM of a recipe from its training transcripts."""

import logging
from pathlib import Path
from typing import Union

from icefall_lite.errors import UsageError
from icefall_lite.lm.kneser_ney import train_kneser_ney, write_arpa
from icefall_lite.lm.token_lm import SPECIAL_PIECES

__all__ = ["build_token_lm"]


def build_token_lm(
    text_file: Union[str, Path],
    bpe_model: Union[str, Path],
    order: int,
    out: Union[str, Path],
) -> Path:
    """Encode every line of ``text_file`` with the BPE model and write a modified Kneser-Ney
    ``order``-gram over the pieces to ``out`` (ARPA, written atomically).

    Every piece of the BPE model gets a unigram, seen in the text or not, so the LM's
    vocabulary is exactly the model's (a search never meets an unknown token).
    """
    from icefall_lite.data import load_bpe_model

    text_file, out = Path(text_file), Path(out)
    if order < 1:
        raise UsageError(f"--order must be >= 1, got {order}")
    if not text_file.is_file():
        raise UsageError(f"--text {text_file}: no such file (prepare.sh's BPE stage writes it)")
    sp = load_bpe_model(bpe_model)
    lines = [line.strip() for line in text_file.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise UsageError(f"--text {text_file}: no transcripts in it")
    sentences = sp.encode(lines, out_type=str)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    vocabulary = [p for p in pieces if p not in SPECIAL_PIECES]
    entries = train_kneser_ney(sentences, order=order, vocabulary=vocabulary)
    write_arpa(entries, out)
    counts = ", ".join(f"{n}-grams {len(entries[n])}" for n in sorted(entries))
    logging.info(f"Wrote {out}: {len(lines)} sentences, {counts}")
    return out
