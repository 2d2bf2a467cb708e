"""From encoded audio bytes to a fixed-length mono float waveform, with clear errors.

Decoding is soundfile's (WAV/FLAC/OGG, and MP3 with libsndfile >= 1.1); no torchcodec/FFmpeg.
Policy for bad clips: raise `BadClipError` (a ValueError) naming the task, split, clip id and
field. A bad clip never silently changes a metric.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


class BadClipError(ValueError):
    """A clip that cannot be used as it is: corrupt, empty, non-finite, bad label, ..."""


def clip_error(where: str, clip_id: str, field: str, problem: str) -> BadClipError:
    return BadClipError(f"{where}: clip {clip_id!r}, field {field!r}: {problem}")


def decode_audio(audio: dict | bytes | None, clip_id: str, where: str = "audio") -> tuple[np.ndarray, int]:
    """Decode `{"bytes", "path"}` (or raw bytes) -> (float32 array [channels, samples], sample rate)."""
    if isinstance(audio, (bytes, bytearray)):
        data, path = bytes(audio), None
    elif isinstance(audio, dict):
        data, path = audio.get("bytes"), audio.get("path")
    else:
        raise clip_error(where, clip_id, "audio", f"expected {{'bytes', 'path'}}, got {type(audio).__name__}")
    if data is None:
        if path is None or not Path(path).is_file():
            raise clip_error(where, clip_id, "audio", f"no bytes and no readable file at path={path!r}")
        data = Path(path).read_bytes()
    if len(data) == 0:
        raise clip_error(where, clip_id, "audio.bytes", "empty (0 bytes)")
    try:
        wav, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # [samples, channels]
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError by format
        raise clip_error(where, clip_id, "audio.bytes", f"cannot decode ({len(data)} bytes): {err}") from None
    if wav.shape[0] == 0:
        raise clip_error(where, clip_id, "audio.bytes", "decoded to 0 samples (empty audio)")
    if not np.isfinite(wav).all():
        raise clip_error(where, clip_id, "audio.bytes", "contains NaN or Inf samples")
    return np.ascontiguousarray(wav.T), int(sr)


def to_mono(wav: torch.Tensor) -> torch.Tensor:
    """[channels, samples] -> [samples] by averaging channels."""
    return wav.mean(dim=0)


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    if orig_sr == new_sr:
        return wav
    return AF.resample(wav, orig_sr, new_sr)


def fit_length(wav: torch.Tensor, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop or zero-pad the last axis to `num_samples`.

    With a generator the crop offset is random (training); without one the clip start is kept
    (evaluation, deterministic), as in PSLA, which truncates/pads from the start.
    """
    n = wav.shape[-1]
    if n > num_samples:
        if generator is None:
            start = 0
        else:
            start = int(torch.randint(0, n - num_samples + 1, (1,), generator=generator))
        return wav[..., start : start + num_samples]
    if n < num_samples:
        return torch.nn.functional.pad(wav, (0, num_samples - n))
    return wav


def decode_mono(audio: dict | bytes, clip_id: str, sample_rate: int, where: str = "audio") -> torch.Tensor:
    """Decode, down-mix to mono, resample to `sample_rate` -> float32 [samples] at its own length."""
    wav, sr = decode_audio(audio, clip_id, where)
    return resample(to_mono(torch.from_numpy(wav)), sr, sample_rate)


def load_clip(
    audio: dict | bytes,
    clip_id: str,
    sample_rate: int,
    num_samples: int,
    generator: torch.Generator | None = None,
    where: str = "audio",
) -> torch.Tensor:
    """Decode, down-mix to mono, resample to `sample_rate`, crop/pad -> float32 [num_samples]."""
    return fit_length(decode_mono(audio, clip_id, sample_rate, where), num_samples, generator)


def encode_wav(wav: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> bytes:
    """float array [samples] or [samples, channels] -> WAV bytes (how embedded tasks store clips)."""
    buf = io.BytesIO()
    sf.write(buf, wav, sample_rate, format="WAV", subtype=subtype)
    return buf.getvalue()
