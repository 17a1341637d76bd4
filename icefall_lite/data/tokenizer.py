"""SentencePiece BPE models in icefall's layout: ``<lang_dir>/bpe.model`` and ``tokens.txt``.

Ids follow icefall: ``<blk>`` = 0 (the transducer/CTC blank), ``<sos/eos>`` = 1, ``<unk>`` = 2.
``tokens.txt`` has one ``<piece> <id>`` line per id, the file exported models and sherpa-onnx read.
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, List, Union

from icefall_lite.errors import UsageError

__all__ = [
    "train_bpe_model",
    "write_tokens_txt",
    "load_bpe_model",
    "unencodable_characters",
]

PathLike = Union[str, Path]


def train_bpe_model(
    transcripts: PathLike,
    lang_dir: PathLike,
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
) -> Path:
    """Train ``<lang_dir>/bpe.model`` on a text file with one transcript per line.

    The model and ``tokens.txt`` appear atomically (trained in a temp dir, then moved).

    Args:
      transcripts: text file, one utterance per line (the training split's transcripts).
      lang_dir: output folder, e.g. ``data/lang_bpe_500``.
      vocab_size: number of pieces including ``<blk>``, ``<sos/eos>`` and ``<unk>``.
      model_type: ``unigram`` (icefall's choice) or ``bpe``.
      character_coverage: 1.0 keeps every character of the training text.
    Returns:
      the path of ``bpe.model``.
    """
    import sentencepiece as spm

    transcripts = Path(transcripts)
    if not transcripts.is_file() or transcripts.stat().st_size == 0:
        raise FileNotFoundError(
            f"train_bpe_model: transcript file {transcripts} is missing or empty"
        )
    lang_dir = Path(lang_dir)
    lang_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lang_dir, prefix=".bpe-") as tmp:
        prefix = os.path.join(tmp, "bpe")
        spm.SentencePieceTrainer.train(
            input=str(transcripts),
            vocab_size=vocab_size,
            model_type=model_type,
            model_prefix=prefix,
            input_sentence_size=100_000_000,
            character_coverage=character_coverage,
            # Reserve ids 0 and 1 for the blank and <sos/eos>, as icefall's models expect.
            user_defined_symbols=["<blk>", "<sos/eos>"],
            unk_id=2,
            bos_id=-1,
            eos_id=-1,
            num_threads=1,
            minloglevel=2,
        )
        shutil.copyfile(prefix + ".model", os.path.join(tmp, "bpe.model.final"))
        os.replace(os.path.join(tmp, "bpe.model.final"), lang_dir / "bpe.model")
    sp = load_bpe_model(lang_dir / "bpe.model")
    write_tokens_txt(sp, lang_dir / "tokens.txt")
    logging.info(f"Trained {lang_dir / 'bpe.model'}: {sp.get_piece_size()} pieces")
    return lang_dir / "bpe.model"


def write_tokens_txt(sp, filename: PathLike) -> None:
    """Write ``<piece> <id>`` for every id of the SentencePiece model ``sp`` (atomically)."""
    filename = Path(filename)
    tmp = filename.with_name(filename.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for token_id in range(sp.get_piece_size()):
            f.write(f"{sp.id_to_piece(token_id)} {token_id}\n")
    os.replace(tmp, filename)


def load_bpe_model(filename: PathLike):
    """Load a SentencePiece model; a one-line error names the file and the stage that makes it."""
    import sentencepiece as spm

    filename = Path(filename)
    if not filename.is_file():
        raise FileNotFoundError(
            f"BPE model {filename} not found: run prepare.sh's BPE stage (it makes "
            f"{filename.parent}/bpe.model and tokens.txt)"
        )
    sp = spm.SentencePieceProcessor()
    try:
        sp.load(str(filename))
    except (OSError, RuntimeError) as error:
        reason = " ".join(str(error).split())[:120]
        raise UsageError(f"BPE model {filename}: not a SentencePiece model ({reason})") from None
    return sp


def unencodable_characters(sp, texts: Iterable[str]) -> List[str]:
    """Characters of ``texts`` that ``sp`` can only map to ``<unk>`` (sorted, unique)."""
    unk_id = sp.unk_id()
    bad = set()
    seen = set()
    for text in texts:
        for char in set(text) - seen:
            seen.add(char)
            if char == " ":
                continue
            ids = sp.encode(char, out_type=int)
            # A character is covered when some piece contains it; an encoding made only of the
            # word-boundary piece and <unk> means the model has never seen it.
            pieces = [sp.id_to_piece(i) for i in ids]
            if unk_id in ids or not any(char in piece for piece in pieces):
                bad.add(char)
    return sorted(bad)
