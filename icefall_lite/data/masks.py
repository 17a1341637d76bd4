"""SpecAugment frequency and time masks and SpecCutout rectangles, as a batch transform.

Park et al. 2019 (SpecAugment) blank ``freq_masks`` bands of up to ``freq_width`` bins and
``time_masks`` spans of up to ``time_width`` frames; DeVries & Taylor 2017 (Cutout), as NeMo's
``SpecCutout`` uses it for Jasper/QuartzNet, blank ``rect_masks`` rectangles of up to
``rect_time`` x ``rect_freq``. Time warping is left out (it is the Zipformer recipe's lhotse
``SpecAugment``); masked values are the utterance's mean, so a mask does not look like silence
far below the fbank's range.
"""

from typing import Optional

import torch
from torch import Tensor

__all__ = ["SpecMasks"]


class SpecMasks:
    """A lhotse input transform: ``transform(features, supervision_segments)`` on (N, T, F).

    Args:
      freq_masks, freq_width: number and most bins of frequency masks (width uniform in
        [0, freq_width]).
      time_masks, time_width: number and most frames of time masks.
      rect_masks, rect_time, rect_freq: number and most frames x bins of cutout rectangles.
      generator: random source (default: torch's global one, which the training loop seeds).
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 15,
        time_masks: int = 2,
        time_width: int = 25,
        rect_masks: int = 0,
        rect_time: int = 25,
        rect_freq: int = 15,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        for name, value in (
            ("freq_masks", freq_masks),
            ("freq_width", freq_width),
            ("time_masks", time_masks),
            ("time_width", time_width),
            ("rect_masks", rect_masks),
            ("rect_time", rect_time),
            ("rect_freq", rect_freq),
        ):
            if value < 0:
                raise ValueError(f"SpecMasks: {name} must be >= 0, got {value}")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.rect_masks, self.rect_time, self.rect_freq = rect_masks, rect_time, rect_freq
        self.generator = generator

    def _randint(self, high: int) -> int:
        """Uniform in [0, high]."""
        return int(torch.randint(0, high + 1, (1,), generator=self.generator))

    def _span(self, size: int, width: int):
        """A random (start, end) of width in [0, min(width, size)] inside [0, size)."""
        w = self._randint(min(width, size))
        start = self._randint(size - w)
        return start, start + w

    def mask(self, num_frames: Tensor, max_frames: int, num_bins: int) -> Tensor:
        """(N, T, F) bool: True where a mask or rectangle falls (only on valid frames).

        Args:
          num_frames: (N,) valid frames per utterance.
        """
        n = num_frames.numel()
        out = torch.zeros(n, max_frames, num_bins, dtype=torch.bool)
        for i, frames in enumerate(num_frames.tolist()):
            frames = min(int(frames), max_frames)
            for _ in range(self.freq_masks):
                f0, f1 = self._span(num_bins, self.freq_width)
                out[i, :frames, f0:f1] = True
            for _ in range(self.time_masks):
                t0, t1 = self._span(frames, self.time_width)
                out[i, t0:t1, :] = True
            for _ in range(self.rect_masks):
                t0, t1 = self._span(frames, self.rect_time)
                f0, f1 = self._span(num_bins, self.rect_freq)
                out[i, t0:t1, f0:f1] = True
        return out

    def __call__(self, features: Tensor, supervision_segments: Optional[Tensor] = None) -> Tensor:
        """(N, T, F) features -> the same with the masked regions set to each utterance's mean.

        Args:
          supervision_segments: lhotse's (S, 3) ``(sequence_idx, start_frame, num_frames)``; an
            utterance's masks stay inside its supervisions' end (all T frames if not given).
        """
        if features.ndim != 3:
            raise ValueError(f"SpecMasks: expected (N, T, F) features, got {tuple(features.shape)}")
        n, t, f = features.shape
        num_frames = torch.full((n,), t, dtype=torch.int64)
        if supervision_segments is not None:
            num_frames.zero_()
            for seq, start, frames in supervision_segments.tolist():
                num_frames[int(seq)] = max(int(num_frames[int(seq)]), int(start + frames))
        mask = self.mask(num_frames, t, f).to(features.device)
        means = features.mean(dim=(1, 2), keepdim=True).expand_as(features)
        return torch.where(mask, means, features)

    def __repr__(self) -> str:
        return (
            f"SpecMasks(freq={self.freq_masks}x{self.freq_width}, "
            f"time={self.time_masks}x{self.time_width}, "
            f"rect={self.rect_masks}x{self.rect_time}x{self.rect_freq})"
        )
