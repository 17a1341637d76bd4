#!/usr/bin/env python3
"""WER against training wall time: decode every checkpoint of an experiment on small subsets.

Usage (from a recipe folder, e.g. egs/synth/ASR):

  ../../../tools/wer_curve.py --exp-dir zipformer/exp --cuts-prefix synth \\
      --test-sets dev,test-human --max-utts 100 \\
      --decoding-methods greedy_search,ctc_greedy_search

Every ``checkpoint-N.pt`` and ``epoch-N.pt`` in ``--exp-dir`` is decoded as it is (no
averaging), full context, on the first ``--max-utts`` cuts (sorted by id) of each test set. The
training wall time comes from the checkpoint (``train_seconds``, written by the training loop;
checkpoints without it are skipped with a note). Rows already in ``--out`` for the same
checkpoint file, step, test set, method and subset size are kept, not decoded again, so the
command can be re-run as training goes on.

Writes ``--out`` (default ``<exp-dir>/wer-vs-time.tsv``, atomically) with the columns
``checkpoint step epoch train_minutes test_set method num_utts wer``.
"""

import argparse
import csv
import logging
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icefall_lite.checkpoint import read_checkpoint, stored_params  # noqa: E402
from icefall_lite.cli.evaluate import encode_batch  # noqa: E402
from icefall_lite.data import AsrDataModule, load_bpe_model  # noqa: E402
from icefall_lite.models import build_model  # noqa: E402
from icefall_lite.scoring import word_error_rate  # noqa: E402
from icefall_lite.search.decoding import DECODING_METHODS, search  # noqa: E402
from icefall_lite.utils import AttributeDict, atomic_open  # noqa: E402

COLUMNS = ["checkpoint", "step", "epoch", "train_minutes", "test_set", "method", "num_utts", "wer"]
_CHECKPOINT_RE = re.compile(r"^(checkpoint|epoch)-(\d+)\.pt$")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exp-dir", type=Path, required=True, help="Training output folder.")
    parser.add_argument("--test-sets", default="dev,test-human", help="Comma-separated splits.")
    parser.add_argument(
        "--max-utts", type=int, default=100, help="First N cuts (by id) of each set; 0: all."
    )
    parser.add_argument(
        "--decoding-methods",
        default="greedy_search,ctc_greedy_search",
        help="Comma-separated; CTC methods are skipped for models without a CTC head.",
    )
    parser.add_argument("--bpe-model", default=None, help="Default: the one the model used.")
    parser.add_argument("--num-threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument("--out", type=Path, default=None, help="TSV to write.")
    AsrDataModule.add_arguments(parser)  # its --cuts-prefix names the cut files
    parser.set_defaults(cuts_prefix="synth")
    return parser


def list_checkpoints(exp_dir: Path) -> List[Path]:
    """checkpoint-N.pt and epoch-N.pt files of ``exp_dir``, by name."""
    return sorted(p for p in exp_dir.iterdir() if _CHECKPOINT_RE.match(p.name))


def read_rows(path: Path) -> List[Dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def write_rows(path: Path, rows: List[Dict[str, str]]) -> None:
    rows = sorted(rows, key=lambda r: (float(r["train_minutes"]), r["test_set"], r["method"]))
    with atomic_open(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _row_key(row: Dict[str, str]) -> Tuple[str, ...]:
    return (row["checkpoint"], row["step"], row["test_set"], row["method"], row["num_utts"])


def load_checkpoint_model(checkpoint: Dict) -> Tuple[torch.nn.Module, AttributeDict]:
    """The model a checkpoint (from ``read_checkpoint``) describes, with its weights, in eval
    mode, and its params."""
    params = AttributeDict(stored_params(checkpoint))
    model = build_model(params)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), params


def usable(model: torch.nn.Module, method: str) -> bool:
    """CTC methods need a CTC head, the others a transducer."""
    if method.startswith("ctc"):
        return bool(getattr(model, "use_ctc", False))
    return bool(getattr(model, "use_transducer", True))


@torch.no_grad()
def decode_wers(
    params: AttributeDict, model: torch.nn.Module, dl, sp, methods: List[str]
) -> Dict[str, float]:
    """WER (%) of each method on the dataloader's cuts; the encoder runs once per batch, full
    context (a causal model gets decode.py's tail padding)."""
    settings = dict(params, chunk_size=-1, left_context_frames=-1, max_sym_per_frame=1)
    settings.update(beam_size=4, beam=20.0, max_states=64, max_contexts=8)
    pairs: Dict[str, List[Tuple[List[str], List[str]]]] = {m: [] for m in methods}
    for batch in dl:
        encoder_out, encoder_out_lens = encode_batch(settings, model, batch)
        refs = [text.split() for text in batch["supervisions"]["text"]]
        for method in methods:
            settings["decoding_method"] = method
            hyps = search(settings, model, encoder_out, encoder_out_lens)
            pairs[method] += [(ref, sp.decode(h.tokens).split()) for ref, h in zip(refs, hyps)]
    return {method: word_error_rate(pairs[method]) for method in methods}


def main() -> None:
    args = get_parser().parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [wer_curve] %(message)s", level="INFO")
    torch.set_num_threads(args.num_threads)
    if not args.exp_dir.is_dir():
        sys.exit(f"wer_curve.py: --exp-dir {args.exp_dir} is not a folder")
    out = args.out or args.exp_dir / "wer-vs-time.tsv"
    methods = [m for m in args.decoding_methods.split(",") if m]
    for method in methods:
        if method not in DECODING_METHODS:
            sys.exit(f"wer_curve.py: --decoding-methods: unknown method '{method}'")
    checkpoints = list_checkpoints(args.exp_dir)
    if not checkpoints:
        sys.exit(f"wer_curve.py: no checkpoint-*.pt or epoch-*.pt in {args.exp_dir}")

    data_module = AsrDataModule(args)
    test_cuts = {}
    for name in [s for s in args.test_sets.split(",") if s]:
        cuts = data_module.load_cuts(args.cuts_prefix, name).to_eager()
        ids = sorted(cuts.ids)
        if args.max_utts > 0:
            ids = ids[: args.max_utts]
        if not ids:
            sys.exit(f"wer_curve.py: test set '{name}' has no cuts")
        test_cuts[name] = cuts.subset(cut_ids=ids)

    rows = read_rows(out)
    done = {_row_key(r) for r in rows}
    sp = None
    for path in checkpoints:
        checkpoint_info = read_checkpoint(path)
        if "train_seconds" not in checkpoint_info:
            logging.info(f"{path.name}: no train_seconds (older training code); skipped")
            continue
        step = str(checkpoint_info.get("batch_idx_train", 0))
        pending = [
            (name, method)
            for name in test_cuts
            for method in methods
            if (path.name, step, name, method, str(len(test_cuts[name]))) not in done
        ]
        if not pending:
            continue
        model, params = load_checkpoint_model(checkpoint_info)
        if sp is None:
            sp = load_bpe_model(args.bpe_model or params.bpe_model)
        for name in test_cuts:
            wanted = [m for t, m in pending if t == name and usable(model, m)]
            if not wanted:
                continue
            wers = decode_wers(
                params, model, data_module.test_dataloaders(test_cuts[name]), sp, wanted
            )
            for method, wer in wers.items():
                row = dict(
                    checkpoint=path.name,
                    step=step,
                    epoch=str(checkpoint_info.get("cur_epoch", "")),
                    train_minutes=f"{float(checkpoint_info['train_seconds']) / 60:.2f}",
                    test_set=name,
                    method=method,
                    num_utts=str(len(test_cuts[name])),
                    wer=f"{wer:.2f}",
                )
                logging.info("  ".join(f"{k}={v}" for k, v in row.items()))
                rows.append(row)
        write_rows(out, rows)
    write_rows(out, rows)
    logging.info(f"Wrote {out}")


if __name__ == "__main__":
    main()
