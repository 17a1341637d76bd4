"""Streaming feature normalisation: per-mel-bin running mean and variance, updated frame by frame.

A model trained on per-utterance normalised features (each bin of an utterance shifted and scaled
to zero mean, unit variance) cannot have them in streaming: the statistics of the whole
utterance are not known yet. As in Myrtle.ai's RNN-T inference, each frame is normalised with an
exponentially weighted running mean and variance instead, started from the training data's
statistics (:func:`mel_stats`, saved by :func:`save_mel_stats`) and updated with weight
``alpha`` per frame::

    mean = (1 - alpha) * mean + alpha * x
    var  = (1 - alpha) * var  + alpha * (x - mean) ** 2
    y    = (x - mean) / sqrt(var + eps)

The update is causal and frame by frame, so normalising an utterance chunk by chunk gives
exactly what normalising it whole gives (the same operations in the same order).
"""

import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Tuple, Union

import torch
from torch import Tensor

from icefall_lite.errors import UsageError

__all__ = [
    "FeatureNorm",
    "StreamingNormalizer",
    "load_mel_stats",
    "mel_stats",
    "save_mel_stats",
]


class StreamingNormalizer:
    """Running per-bin statistics of one stream (or of a sequence of utterances).

    Args:
      mean, var: (F,) the statistics to start from (the training data's).
      alpha: weight of each new frame (the reference's default 0.001).
      eps: added to the variance before the square root.
    """

    def __init__(self, mean: Tensor, var: Tensor, alpha: float = 0.001, eps: float = 1e-5):
        if mean.ndim != 1 or mean.shape != var.shape:
            raise ValueError(
                f"mel stats: mean and var must both be (F,), got {tuple(mean.shape)} and "
                f"{tuple(var.shape)}"
            )
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"--stream-norm-alpha must be in (0, 1], got {alpha}")
        self.init_mean = mean.double()
        self.init_var = var.double()
        self.alpha = alpha
        self.eps = eps
        self.reset()

    def reset(self) -> None:
        """Back to the starting (training) statistics."""
        self.mean = self.init_mean.clone()
        self.var = self.init_var.clone()

    def fresh(self) -> "StreamingNormalizer":
        """A new normaliser with the same starting statistics and settings."""
        return StreamingNormalizer(self.init_mean, self.init_var, self.alpha, self.eps)

    def continued(self) -> "StreamingNormalizer":
        """A new normaliser starting from this one's current statistics."""
        other = self.fresh()
        other.mean, other.var = self.mean.clone(), self.var.clone()
        return other

    def __call__(self, frames: Tensor) -> Tensor:
        """Normalise (T, F) frames in order, updating the statistics; returns (T, F) in the
        frames' dtype and device."""
        if frames.ndim != 2 or frames.size(1) != self.mean.numel():
            raise ValueError(
                f"stream normalisation: expected (T, {self.mean.numel()}) frames, got "
                f"{tuple(frames.shape)}"
            )
        x = frames.detach().to("cpu", torch.float64)
        out = torch.empty_like(x)
        mean, var, a = self.mean, self.var, self.alpha
        for t in range(x.size(0)):
            mean = (1 - a) * mean + a * x[t]
            var = (1 - a) * var + a * (x[t] - mean) ** 2
            out[t] = (x[t] - mean) / torch.sqrt(var + self.eps)
        self.mean, self.var = mean, var
        return out.to(frames.device, frames.dtype)


def mel_stats(features: Iterable[Tensor]) -> Tuple[Tensor, Tensor, int]:
    """Per-bin mean and (population) variance over every frame of ``features`` ((T, F) each).

    Returns:
      (F,) mean, (F,) variance (float64) and the number of frames.
    """
    total = total_sq = None
    count = 0
    for x in features:
        x = x.double()
        if total is None:
            total, total_sq = torch.zeros(x.size(1), dtype=torch.float64), torch.zeros(
                x.size(1), dtype=torch.float64
            )
        total += x.sum(dim=0)
        total_sq += (x * x).sum(dim=0)
        count += x.size(0)
    if count == 0:
        raise ValueError("mel stats: no frames")
    mean = total / count
    return mean, (total_sq / count - mean * mean).clamp(min=0.0), count


def save_mel_stats(filename: Union[str, Path], mean: Tensor, var: Tensor, num_frames: int) -> None:
    """Write ``{"mean", "var", "num_frames"}`` atomically (temporary file, then rename)."""
    filename = Path(filename)
    filename.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=filename.parent, prefix=f".{filename.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"mean": mean, "var": var, "num_frames": num_frames}, f)
        os.replace(tmp, filename)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_mel_stats(filename: Union[str, Path]) -> Tuple[Tensor, Tensor]:
    """(F,) mean and variance from a :func:`save_mel_stats` file; a one-line ``UsageError``
    naming the file when it is missing or not such a file."""
    filename = Path(filename)
    if not filename.is_file():
        raise UsageError(
            f"--stream-norm-stats {filename}: not found; write it with "
            f"./lstm_transducer/dump_mel_stats.py (the training data's per-bin statistics)"
        )
    try:
        stats = torch.load(filename, map_location="cpu", weights_only=True)
        return stats["mean"], stats["var"]
    except Exception as error:
        raise UsageError(
            f"--stream-norm-stats {filename}: not a mel statistics file "
            f"({type(error).__name__}: {' '.join(str(error).split())[:100]})"
        ) from None


class FeatureNorm:
    """How the decode loops normalise each utterance of a model trained on per-utterance
    normalised features.

    Args:
      stats: the running statistics to start from; None: per-utterance normalisation over the
        whole utterance (what training saw; not causal, a reference for streaming).
      reset: each utterance starts from ``stats`` (``--reset-stream-stats 1``, as a fresh
        channel of an inference server); False: it starts from where the previous utterance
        left them (utterances in the order they finish; sequential with one stream).
    """

    # Normalised features have mean 0: the value that pads the last chunk.
    pad_value = 0.0

    def __init__(self, stats: Optional[StreamingNormalizer] = None, reset: bool = True) -> None:
        self.stats = stats
        self.reset = reset
        self._last: Optional[StreamingNormalizer] = None

    def start(self, features: Tensor) -> Tuple[Tensor, Optional[StreamingNormalizer]]:
        """An utterance's (T, F) features and the normaliser its stream applies chunk by chunk
        (None: the features are already normalised, over the whole utterance)."""
        if self.stats is None:
            return _normalize_utterance(features), None
        if self.reset or self._last is None:
            return features, self.stats.fresh()
        return features, self._last.continued()

    def finish(self, normalizer: Optional[StreamingNormalizer]) -> None:
        """An utterance is done: the next one continues from its statistics (no reset)."""
        if normalizer is not None:
            self._last = normalizer

    def whole(self, features: Tensor) -> Tensor:
        """Normalise a whole (T, F) utterance as its stream would, chunk by chunk."""
        features, normalizer = self.start(features)
        if normalizer is not None:
            features = normalizer(features)
            self.finish(normalizer)
        return features


def _normalize_utterance(features: Tensor, eps: float = 1e-5) -> Tensor:
    # The model's own per-utterance normalisation (models/lstm_transducer/normalization.py).
    from icefall_lite.models.lstm_transducer.normalization import UtteranceNormalization

    lens = torch.tensor([features.size(0)], device=features.device)
    return UtteranceNormalization(eps=eps)(features.unsqueeze(0), lens)[0]
