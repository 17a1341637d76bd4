#!/usr/bin/env python3
"""What n-gram LM fusion costs the CTC prefix beam search: seconds of search per second of audio
with and without the LM, and their ratio (the issue's bound: at most 3x at beam 4).

Usage (from egs/synth/ASR, after training conv_ctc and prepare.sh's LM stage):

    ../../../tools/bench/lm_fusion.py --checkpoint conv_ctc/exp/checkpoint-1000.pt \\
        --cuts data/fbank/synth_cuts_dev.jsonl.gz --lm data/lm/lang_bpe_128_5gram.arpa \\
        --bpe-model data/lang_bpe_128/bpe.model --beam-size 4 --repeats 3

The CTC log-probabilities of the cuts are computed once (the encoder's cost is the same with or
without an LM); the searches are then timed alternately, plain / fused, ``--repeats`` times,
so machine noise hits both alike. The LM's cache is emptied before every fused pass (a cold
start, as decode.py has), and its load time is reported apart.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.checkpoint import read_checkpoint, stored_params  # noqa: E402
from icefall_lite.data import load_bpe_model  # noqa: E402
from icefall_lite.lm import load_token_lm  # noqa: E402
from icefall_lite.models import build_model  # noqa: E402
from icefall_lite.search import ctc_prefix_beam_search  # noqa: E402
from icefall_lite.search.lm_fusion import LmFusion  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="A CTC model checkpoint.")
    parser.add_argument("--cuts", type=Path, required=True, help="Cuts with fbank features.")
    parser.add_argument("--lm", type=Path, required=True, help="Token ARPA LM.")
    parser.add_argument("--bpe-model", type=Path, required=True)
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--lm-scale", type=float, default=0.5)
    parser.add_argument("--num-cuts", type=int, default=100, help="First N cuts.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lhotse import CutSet

    checkpoint = read_checkpoint(args.checkpoint)
    model = build_model(stored_params(checkpoint))
    model.load_state_dict(checkpoint["model"])
    model.eval()
    cuts = CutSet.from_file(args.cuts).subset(first=args.num_cuts).to_eager()
    audio_seconds = sum(c.duration for c in cuts)
    log_probs = []
    with torch.no_grad():
        for cut in cuts:
            x = torch.from_numpy(cut.load_features()).unsqueeze(0)
            out, lens = model.forward_encoder(x, torch.tensor([x.size(1)]))
            log_probs.append((model.ctc_output(out), lens))
    sp = load_bpe_model(args.bpe_model)
    start = time.perf_counter()
    lm = load_token_lm(args.lm, [sp.id_to_piece(i) for i in range(sp.get_piece_size())])
    load_seconds = time.perf_counter() - start

    def run(fusion):
        start = time.perf_counter()
        for lp, lens in log_probs:
            ctc_prefix_beam_search(lp, lens, beam=args.beam_size, fusion=fusion)
        return time.perf_counter() - start

    plain, fused = [], []
    for _ in range(args.repeats):
        plain.append(run(None))
        lm.lm._cache.clear()  # a cold LM every pass
        fused.append(run(LmFusion(lm, args.lm_scale)))
    p, f = statistics.median(plain), statistics.median(fused)
    print(
        f"# {len(cuts)} cuts, {audio_seconds:.1f} s audio; beam {args.beam_size}; "
        f"{lm.order}-gram LM loaded in {load_seconds:.1f} s; {args.threads} thread(s); "
        f"median of {args.repeats}"
    )
    print(f"{'search':>24} {'seconds':>8} {'RTF':>8} {'x plain':>8}")
    print(f"{'prefix beam':>24} {p:8.2f} {p / audio_seconds:8.4f} {1.0:8.2f}")
    print(f"{'prefix beam + LM':>24} {f:8.2f} {f / audio_seconds:8.4f} {f / p:8.2f}")


if __name__ == "__main__":
    main()
