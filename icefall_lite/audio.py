"""Reading audio files for inference (pretrained scripts, ``transcribe()``) and turning them into
the fbank features the models were trained on.

Training reads audio through lhotse manifests; this module is for files a user names on the
command line, which may be at any sample rate and have any number of channels:

* another sample rate is resampled to the model's (16 kHz), with a logged note;
* more than one channel: the first channel is used, with a logged note;
* a WAV file shorter than its header says (an interrupted copy) is read with a warning;
* a file that cannot be read raises :class:`AudioReadError` naming the file, so a caller
  transcribing many files can report it and go on with the others.
"""

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    "AudioReadError",
    "compute_fbank",
    "read_audio",
    "read_audio_files",
    "wav_truncation",
]

PathLike = Union[str, Path]


class AudioReadError(ValueError):
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
      one (num_frames, 80) float32 tensor per waveform (10 ms frames).
    """
    from icefall_lite.data.features import make_fbank_extractor

    extractor = make_fbank_extractor(backend)
    features = []
    for wave in waves:
        feats = extractor.extract(wave.detach().cpu().numpy().astype(np.float32), sample_rate)
        features.append(torch.as_tensor(np.asarray(feats), dtype=torch.float32))
    return features
