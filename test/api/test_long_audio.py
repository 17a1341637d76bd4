"""Long audio: chunked reading and fbank equal to the whole file's, incremental streaming equal to
streaming the whole input, windows covering every frame, and joins that neither lose nor double
a word."""

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import chirp

from icefall_lite.api.long_audio import WindowMerger, iter_windows, stream_features
from icefall_lite.audio import compute_fbank, iter_fbank_chunks, iter_waveform_blocks, read_audio
from icefall_lite.search.hypothesis import DecodingResult
from icefall_lite.streaming import StreamingSearch, streaming_decode


@pytest.mark.parametrize("backend", ["auto", "lhotse"])
def test_chunked_fbank_equals_the_whole_files(backend):
    wave = torch.from_numpy(np.concatenate([chirp(1.3, 0), chirp(0.77, 1)]))
    whole = compute_fbank([wave], backend=backend)[0]
    for block in (0.3, 1.0, 5.0):
        step = int(block * 16000)
        blocks = [wave[i : i + step] for i in range(0, wave.numel(), step)]
        joined = torch.cat(list(iter_fbank_chunks(blocks, backend=backend)))
        # Equal up to float rounding: the FFT/matmul kernels round differently with the number of
        # frames on some CPUs; a seam error (a frame reading zeros or another chunk's padding)
        # changes log-mel values by far more than 1e-4.
        assert joined.shape == whole.shape, block
        torch.testing.assert_close(joined, whole, rtol=1e-5, atol=1e-4, msg=f"block {block}")


def test_block_reading_equals_reading_the_whole_file(tmp_path):
    wave = np.concatenate([chirp(1.1, 2), chirp(0.9, 3)])
    sf.write(tmp_path / "a.wav", wave, 16000)
    blocks = list(iter_waveform_blocks(tmp_path / "a.wav", block_seconds=0.25))
    assert len(blocks) == 8 and torch.equal(torch.cat(blocks), read_audio(tmp_path / "a.wav"))
    # Another rate: each block is resampled with a margin, so the blocks join without seams.
    sf.write(tmp_path / "b.wav", wave[::2], 8000)
    joined = torch.cat(list(iter_waveform_blocks(tmp_path / "b.wav", block_seconds=0.3)))
    whole = read_audio(tmp_path / "b.wav")
    assert joined.shape == whole.shape and torch.allclose(joined, whole, atol=1e-5)
    segment = torch.cat(list(iter_waveform_blocks(tmp_path / "a.wav", 16000, 0.1, 0.5, 0.5)))
    assert torch.equal(segment, read_audio(tmp_path / "a.wav")[8000:16000])


@pytest.mark.parametrize("method", ["greedy_search", "modified_beam_search"])
def test_incremental_streaming_equals_streaming_the_whole_input(models, method):
    model = models["causal"]
    feats = compute_fbank([torch.from_numpy(np.concatenate([chirp(1.7, 0), chirp(1.4, 1)]))])[0]
    encoder = model.model.streaming_encoder(model.chunk_size, model.left_context_frames)
    search = StreamingSearch(model.model, method, beam_size=2)
    whole, _ = streaming_decode(encoder, search, [("a", feats)])
    pieces = [feats[i : i + 37] for i in range(0, feats.size(0), 37)]  # not chunk-aligned
    fed = stream_features(encoder, search, pieces, torch.device("cpu"))
    assert fed.tokens == whole["a"].tokens and fed.timestamps == whole["a"].timestamps
    assert len(fed.tokens) > 10


def test_windows_cover_every_frame_once_per_window():
    feats = torch.arange(1000.0).unsqueeze(1)
    pieces = [feats[i : i + 130] for i in range(0, 1000, 130)]
    windows = list(iter_windows(pieces, window_frames=300, hop_frames=200))
    assert [start for start, _ in windows] == [0, 200, 400, 600, 800]
    for start, w in windows:
        assert torch.equal(w[:, 0], torch.arange(start, start + w.size(0), dtype=torch.float32))
    assert windows[-1][1][-1, 0] == 999
    assert [s for s, _ in iter_windows([feats[:250]], 300, 200)] == [0]  # shorter than a window


def _result(words, offset=0):
    """Tokens/times from ``[(piece ids, first frame), ...]`` (one frame per piece)."""
    tokens, times = [], []
    for ids, frame in words:
        tokens += ids
        times += [frame - offset + k for k in range(len(ids))]
    return DecodingResult(tokens=tokens, timestamps=times, score=-1.0)


def test_joins_keep_each_word_once_despite_jitter():
    # Words every 10 frames; window 2 starts at frame 100, window 1 ends at 140. In the overlap
    # each window places the words a frame or two differently, and each has a bad word at its
    # own edge (heard with little context).
    truth = [([3 + (i % 5), 8], 10 * i) for i in range(25)]
    left = [w for w in truth if w[1] < 130] + [([7], 137)]  # edge garbage at the end
    right = [([7], 101)] + [(ids, f + (1 if i % 2 else -1)) for i, (ids, f) in enumerate(truth)
                            if f >= 110]  # fmt: skip
    merger = WindowMerger()
    merger.add(_result(left), 0, 140)
    merger.add(_result(right, offset=100), 100, 250)
    merged = merger.result()
    assert merged.tokens == [t for ids, _ in truth for t in ids]
    assert 110 < merger.cuts[1] < 130  # inside the middle half of the overlap
    assert merged.timestamps == sorted(merged.timestamps)


@pytest.mark.parametrize("kind, mode", [("offline", "chunked"), ("causal", "streaming"),
                                        ("causal", "chunked"), ("ctc", "chunked")])  # fmt: skip
def test_long_inputs_take_the_long_path(models, kind, mode, tmp_path):
    model = models[kind]
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate([chirp(2.0, i) for i in range(4)]), 16000)
    short = model.transcribe(path, return_hypotheses=True)[0]  # 8 s: one utterance
    long = model.transcribe(path, long_audio=mode, long_audio_seconds=1.0,
                            chunk_seconds=3.0, overlap_seconds=1.0,
                            return_hypotheses=True)[0]  # fmt: skip
    assert long.text and long.timestamps == sorted(long.timestamps)
    assert long.timestamps[-1] <= 8.0 and long.timestamps[-1] > 6.0  # covers the whole file
    if mode == "streaming":
        assert long.token_ids == short.token_ids  # the same computation, chunk by chunk
    with pytest.raises(ValueError, match="overlap_seconds"):
        model.transcribe(path, long_audio_seconds=1.0, chunk_seconds=2.0, overlap_seconds=1.5)
