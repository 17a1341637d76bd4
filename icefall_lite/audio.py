"""Reading audio files for inference (pretrained scripts, ``transcribe()``) and turning them into
the fbank features the models were trained on.

Training reads audio through lhotse manifests; this module is for files a user names on the
command line, which may be at any sample rate and have any number of channels:

* another sample rate is resampled to the model's (16 kHz), with a logged note;
* more than one channel: the first channel is used, with a logged note;
* a WAV file shorter than its header says (an interrupted copy) is read with a warning;
* a file that cannot be read raises :class:`AudioReadError` naming the file, so a caller
  transcribing many files can report it and go on with the others.

Long files are read block by block (:func:`iter_waveform_blocks`) and turned into fbank chunk by
chunk (:func:`iter_fbank_chunks`), so memory does not grow with the file's length; the chunked
fbank equals the whole file's (each chunk is computed with a margin of samples on both sides).
"""

import logging
import math
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from icefall_lite.errors import UsageError

__all__ = [
    "AudioReadError",
    "audio_duration",
    "compute_fbank",
    "iter_fbank_chunks",
    "iter_waveform_blocks",
    "read_audio",
    "read_audio_files",
    "wav_truncation",
]

PathLike = Union[str, Path]


class AudioReadError(UsageError):
    """A file could not be read as audio; the message names the file and the reason."""


def _read_with_soundfile(filename: str) -> Tuple[np.ndarray, int]:
    import soundfile

    samples, sample_rate = soundfile.read(filename, dtype="float32", always_2d=True)
    return samples.T, int(sample_rate)  # (num_channels, num_samples)


def _read_with_av(filename: str) -> Tuple[np.ndarray, int]:
    # PyAV (FFmpeg) reads what libsndfile does not: mp3, m4a, G.722 and so on.
    import av

    with av.open(filename) as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        sample_rate = int(stream.rate or stream.codec_context.sample_rate)
        chunks = []
        for frame in container.decode(stream):
            array = frame.to_ndarray()
            if frame.format.is_planar:
                chunks.append(array)  # (channels, samples)
            else:
                # interleaved: (1, samples * channels)
                chunks.append(array.reshape(-1, len(frame.layout.channels)).T)
    if not chunks:
        raise ValueError("no audio frames")
    samples = np.concatenate(chunks, axis=1)
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    return samples.astype(np.float32), sample_rate


def wav_truncation(filename: PathLike) -> Optional[Tuple[int, int]]:
    """For a RIFF/WAVE file whose ``data`` chunk is shorter than its header says: (declared,
    present) bytes of audio data; ``None`` for a complete WAV file or another format.

    libsndfile reads such a file without complaint (the missing tail is simply absent), so a
    file cut short by an interrupted copy would otherwise decode silently.
    """
    import struct

    size = Path(filename).stat().st_size
    with open(filename, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                present = size - (offset + 8)
                # 0 and 0xFFFFFFFF are placeholders written by streaming encoders.
                if chunk_size not in (0, 0xFFFFFFFF) and present < chunk_size:
                    return chunk_size, present
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return None


def read_audio(filename: PathLike, sample_rate: int = 16000) -> torch.Tensor:
    """Read one audio file as a mono float waveform at ``sample_rate``.

    Args:
      filename: any format libsndfile (wav, flac, ogg) or FFmpeg (through PyAV) reads.
      sample_rate: the model's sample rate in Hz; other rates are resampled (logged).
    Returns:
      (num_samples,) float32 tensor, values in [-1, 1].
    Raises:
      AudioReadError: the file is missing, empty or not audio (the message names it).
    """
    filename = str(filename)
    if not Path(filename).is_file():
        raise AudioReadError(f"{filename}: no such file")
    try:
        samples, file_rate = _read_with_soundfile(filename)
    except Exception as sf_error:
        try:
            samples, file_rate = _read_with_av(filename)
        except Exception:
            raise AudioReadError(f"{filename}: cannot read it as audio ({sf_error})") from None
    if samples.shape[1] == 0:
        raise AudioReadError(f"{filename}: the file has no samples")
    truncated = wav_truncation(filename)
    if truncated is not None:
        declared, present = truncated
        logging.warning(
            f"{filename}: truncated WAV file: its header declares {declared} bytes of audio but "
            f"only {present} are there ({100.0 * present / declared:.0f} %); transcribing what "
            "is there"
        )
    if samples.shape[0] > 1:
        logging.warning(f"{filename}: has {samples.shape[0]} channels; using the first one")
    wave = torch.from_numpy(np.ascontiguousarray(samples[0]))
    if file_rate != sample_rate:
        from lhotse.augmentation.resample import Resample

        logging.warning(f"{filename}: resampling from {file_rate} Hz to {sample_rate} Hz")
        wave = Resample(file_rate, sample_rate)(wave.unsqueeze(0)).squeeze(0)
    return wave


def read_audio_files(
    filenames: Sequence[PathLike], sample_rate: int = 16000
) -> List[Optional[torch.Tensor]]:
    """Read several files; an unreadable one is logged as an error and gives ``None``.

    Args:
      filenames: the files, in order.
      sample_rate: see :func:`read_audio`.
    Returns:
      one (num_samples,) waveform per file, ``None`` where the file could not be read.
    """
    waves: List[Optional[torch.Tensor]] = []
    for filename in filenames:
        try:
            waves.append(read_audio(filename, sample_rate))
        except AudioReadError as error:
            logging.error(str(error))
            waves.append(None)
    return waves


def compute_fbank(
    waves: Sequence[torch.Tensor], sample_rate: int = 16000, backend: str = "auto"
) -> List[torch.Tensor]:
    """80-dim fbank of each waveform, with the extractor training used.

    The extractor comes from :func:`icefall_lite.data.features.make_fbank_extractor`, so training
    and inference share one configuration (kaldifeat when installed, lhotse's Fbank otherwise).

    Args:
      waves: (num_samples,) float waveforms at ``sample_rate``.
      sample_rate: Hz.
      backend: ``auto``, ``kaldifeat`` or ``lhotse``.
    Returns:
      one (num_frames, 80) float32 tensor per waveform (10 ms frames); a waveform shorter than
      one 25 ms frame gives (0, 80).
    """
    from icefall_lite.data.features import make_fbank_extractor

    extractor = make_fbank_extractor(backend)
    return [_fbank(extractor, wave, sample_rate) for wave in waves]


def _fbank(extractor, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    from icefall_lite.data.features import NUM_MEL_BINS

    if wave.numel() < int(0.025 * sample_rate):  # the extractors need one whole frame
        return torch.zeros(0, NUM_MEL_BINS)
    feats = extractor.extract(wave.detach().cpu().numpy().astype(np.float32), sample_rate)
    return torch.as_tensor(np.asarray(feats), dtype=torch.float32)


def _check_readable(filename: str) -> None:
    if not Path(filename).is_file():
        raise AudioReadError(f"{filename}: no such file")
    if Path(filename).stat().st_size == 0:
        raise AudioReadError(f"{filename}: the file is empty (0 bytes)")


def audio_duration(filename: PathLike) -> float:
    """Duration in seconds from the file's header (libsndfile; FFmpeg for other formats),
    without reading the samples.

    Raises:
      AudioReadError: missing, empty or not audio (the message names the file).
    """
    filename = str(filename)
    _check_readable(filename)
    try:
        import soundfile

        info = soundfile.info(filename)
        return info.frames / float(info.samplerate)
    except Exception as sf_error:
        try:
            import av

            with av.open(filename) as container:
                if not container.streams.audio:
                    raise ValueError("no audio stream")
                if container.duration is not None:
                    return container.duration / 1e6  # av.time_base: microseconds
                stream = container.streams.audio[0]
                return float(stream.duration * stream.time_base)
        except Exception:
            raise AudioReadError(f"{filename}: cannot read it as audio ({sf_error})") from None


def iter_waveform_blocks(
    filename: PathLike,
    sample_rate: int = 16000,
    block_seconds: float = 10.0,
    offset: float = 0.0,
    duration: Optional[float] = None,
) -> Iterator[torch.Tensor]:
    """A file's mono waveform at ``sample_rate`` in consecutive blocks, read block by block.

    Notes as :func:`read_audio` (other rate resampled, first channel of several, truncated
    WAV). Resampling is done per block with a margin of input samples on both sides, so the
    blocks join without seams (up to float rounding). A format libsndfile cannot open (mp3,
    m4a, ...) is read whole by :func:`read_audio` and then cut into blocks.

    Args:
      block_seconds: length of each block (the last may be shorter).
      offset, duration: seconds; read only this segment (a NeMo manifest's ``offset`` and
        ``duration``); ``duration=None``: to the end.
    Yields:
      (num_samples,) float32 tensors; their concatenation is the whole file (segment).
    Raises:
      AudioReadError: missing, empty, not audio or without samples (naming the file).
    """
    import soundfile

    filename = str(filename)
    _check_readable(filename)
    try:
        sound = soundfile.SoundFile(filename)
    except Exception:
        wave = read_audio(filename, sample_rate)
        first = int(round(offset * sample_rate))
        end = wave.numel() if duration is None else first + int(round(duration * sample_rate))
        wave = wave[first:end]
        step = max(1, int(block_seconds * sample_rate))
        for start in range(0, wave.numel(), step):
            yield wave[start : start + step]
        return
    with sound:
        if sound.frames == 0:
            raise AudioReadError(f"{filename}: the file has no samples")
        first = int(round(offset * sound.samplerate))
        end = sound.frames
        if duration is not None:
            end = min(end, first + int(round(duration * sound.samplerate)))
        if first >= end:
            raise AudioReadError(
                f"{filename}: offset {offset} s is at or past the end of the audio "
                f"({sound.frames / sound.samplerate:.3f} s)"
            )
        truncated = wav_truncation(filename)
        if truncated is not None:
            declared, present = truncated
            logging.warning(
                f"{filename}: truncated WAV file: its header declares {declared} bytes of audio "
                f"but only {present} are there; transcribing what is there"
            )
        if sound.channels > 1:
            logging.warning(f"{filename}: has {sound.channels} channels; using the first one")
        file_rate = int(sound.samplerate)
        if file_rate != sample_rate:
            logging.warning(f"{filename}: resampling from {file_rate} Hz to {sample_rate} Hz")
        yield from _resampled_blocks(sound, first, end, file_rate, sample_rate, block_seconds)


def _resampled_blocks(
    sound, first: int, end: int, file_rate: int, sample_rate: int, block_seconds: float
) -> Iterator[torch.Tensor]:
    """Blocks of samples ``[first, end)`` of ``sound`` (an open soundfile.SoundFile) at
    ``sample_rate``."""

    def read(start: int, stop: int) -> torch.Tensor:
        sound.seek(first + start)
        data = sound.read(stop - start, dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(data[:, 0]))

    total = end - first
    if file_rate == sample_rate:
        step = max(1, int(block_seconds * file_rate))
        for start in range(0, total, step):
            yield read(start, min(total, start + step))
        return
    from lhotse.augmentation.resample import Resample

    resample = Resample(file_rate, sample_rate)
    # Block starts and margins are multiples of ``unit`` input samples, which are a whole
    # number (``out_unit``) of output samples: every block's output starts on the output grid.
    g = math.gcd(file_rate, sample_rate)
    unit, out_unit = file_rate // g, sample_rate // g
    step = max(1, int(block_seconds * file_rate) // unit) * unit
    margin = -(-int(0.05 * file_rate) // unit) * unit  # 50 ms: beyond the filter's reach
    expected_out = -(-total * sample_rate // file_rate)  # what resampling the whole file gives
    emitted = 0
    for start in range(0, total, step):
        stop = min(total, start + step)
        lo, hi = max(0, start - margin), min(total, stop + margin)
        out = resample(read(lo, hi).unsqueeze(0)).squeeze(0)
        skip = (start - lo) // unit * out_unit  # the left margin's output samples
        count = (stop - start) // unit * out_unit if stop < total else expected_out - emitted
        block = out[skip : skip + count]
        emitted += block.numel()
        yield block


def iter_fbank_chunks(
    blocks: Iterable[torch.Tensor], sample_rate: int = 16000, backend: str = "auto"
) -> Iterator[torch.Tensor]:
    """The fbank of a long waveform given in blocks, chunk by chunk, equal (up to float
    rounding, which on some CPUs depends on the number of frames) to :func:`compute_fbank` of
    the whole waveform.

    Frames are 10 ms apart and 25 ms long, centred (the extractors' ``snip_edges=False``): frame
    ``k`` reads samples ``[160 k - 120, 160 k + 280)`` at 16 kHz. Each chunk is computed over
    the samples it needs plus a margin of two frame shifts on both sides, and only the frames
    lying wholly inside are kept, so no frame sees a chunk edge the whole-file fbank would not.

    Args:
      blocks: consecutive (num_samples,) pieces of the waveform at ``sample_rate``.
    Yields:
      (num_frames, 80) float32 tensors; their concatenation is the whole waveform's fbank
      within 1e-4 absolute (the tolerance test/api/test_long_audio.py checks).
    """
    from icefall_lite.data.features import make_fbank_extractor

    extractor = make_fbank_extractor(backend)
    shift = sample_rate // 100
    margin = 2 * shift

    def fbank(samples: torch.Tensor) -> torch.Tensor:
        return _fbank(extractor, samples, sample_rate)

    buffer = torch.zeros(0)
    buffer_start = 0  # absolute sample index of buffer[0], a multiple of ``shift``
    next_frame = 0  # first frame not yet yielded
    for block in blocks:
        buffer = torch.cat([buffer, block.detach().cpu().float()])
        buffer_end = buffer_start + buffer.numel()
        # Frames whose samples (and a margin) are all in the buffer.
        last = (buffer_end - margin) // shift  # exclusive
        if last - next_frame < 50:  # wait for at least half a second of frames
            continue
        feats = fbank(buffer)
        local = next_frame - buffer_start // shift
        yield feats[local : local + last - next_frame]
        next_frame = last
        # Keep the samples the next frames (and their margin) need.
        new_start = max(0, next_frame * shift - margin)
        buffer = buffer[new_start - buffer_start :]
        buffer_start = new_start
    if buffer.numel() > 0:
        feats = fbank(buffer)
        local = next_frame - buffer_start // shift
        if local < feats.size(0):
            yield feats[local:]
