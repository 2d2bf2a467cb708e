"""``mel``: the log-mel of the task cache (``tasks.features.LogMel``), as a registered filterbank.

The benchmark does not call it in training: the mel path reads its log-mel from the feature cache
(normalised with the task's train-split mean and std). It is registered so that the bench, the FLOP
count and the tests treat every filterbank alike; its settings are those of ``tasks.features.LogMel``
(torchaudio ``MelSpectrogram``: ``n_fft = win_length``, power 2, centred, HTK mel scale, then
``log(max(x, 1e-6))``), and a test pins the two to the same numbers. Un-normalised: the per-task
statistics are applied by the cache, not here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffres.filterbanks.registry import Filterbank, register_filterbank

LOG_FLOOR = 1e-6  # tasks.features.LOG_FLOOR


@register_filterbank("mel", learnable=False, channels=1, normalisation="per-task train-split mean/std (cache)",
                     source="torchaudio MelSpectrogram (tasks.features.LogMel)",
                     description="fixed log-mel spectrogram, the cached default")
class MelFilterbank(Filterbank):
    """waveform [B, N] -> log-mel [B, 1 + N // hop, n_bands] (any sample rate)."""

    def __init__(self, n_bands: int, sample_rate: int = 16000, win_ms: float = 25.0, hop_ms: float = 10.0):
        super().__init__(n_bands, sample_rate, win_ms, hop_ms, expected_rate=None)
        import torchaudio.transforms as T  # heavy: only when a mel filterbank is built

        if n_bands > self.win_length // 2 + 1:
            raise ValueError(f"n_bands={n_bands}: expected <= {self.win_length // 2 + 1} (FFT bins of a "
                             f"{win_ms} ms window)")
        self.mel = T.MelSpectrogram(sample_rate=sample_rate, n_fft=self.win_length, win_length=self.win_length,
                                    hop_length=self.hop_length, n_mels=n_bands, power=2.0, center=True,
                                    mel_scale="htk")

    def transform(self, x: Tensor) -> Tensor:
        return torch.log(self.mel(x).clamp_min(LOG_FLOOR)).transpose(1, 2)  # [B, F, T] -> [B, T, F]
