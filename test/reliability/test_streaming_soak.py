"""Soak: 200 utterances of random lengths stream through streaming_decode with 8 slots (so
streams keep joining and leaving); the process's resident memory stays flat within 10 %."""

import numpy as np
import pytest
import torch
from conftest import tiny_params

from icefall_lite.models import build_model
from icefall_lite.streaming.decode import streaming_decode
from icefall_lite.streaming.search import StreamingSearch

NUM_STREAMS = 200
SLOTS = 8
WARM_UP = 40  # streams before the first measurement (allocator pools, lazy init)


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
def test_200_streams_joining_and_leaving_keep_memory_flat():
    torch.manual_seed(0)
    params = tiny_params("--causal", "1", "--chunk-size", "16", "--left-context-frames", "64")
    model = build_model(params).eval()
    encoder = model.streaming_encoder(16, 64)
    search = StreamingSearch(
        model,
        "greedy_search",
        max_sym_per_frame=1,
        beam_size=4,
        beam=4.0,
        max_states=32,
        max_contexts=8,
    )
    rng = np.random.default_rng(18)
    rss = {}

    def utterances():
        for i in range(NUM_STREAMS):
            if i in (WARM_UP, NUM_STREAMS - 1):
                rss[i] = _rss_bytes()
            frames = int(rng.integers(60, 400))  # 0.6 to 4 s
            yield f"utt{i}", torch.from_numpy(rng.normal(size=(frames, 80)).astype(np.float32))

    with torch.no_grad():
        results, stats = streaming_decode(
            encoder, search, utterances(), num_decode_streams=SLOTS, device=torch.device("cpu")
        )
    rss["end"] = _rss_bytes()
    assert len(results) == NUM_STREAMS
    growth = (max(rss[NUM_STREAMS - 1], rss["end"]) - rss[WARM_UP]) / rss[WARM_UP]
    print(
        f"RSS after {WARM_UP} streams {rss[WARM_UP] / 2**20:.1f} MiB, after "
        f"{NUM_STREAMS} {rss['end'] / 2**20:.1f} MiB ({100 * growth:+.1f} %), "
        f"{len(stats.chunk_seconds)} chunks"
    )
    assert growth < 0.10, rss
