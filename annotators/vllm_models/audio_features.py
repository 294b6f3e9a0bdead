"""SALMONN's audio front end without torchaudio (which cannot load beside torch 2.13.0+cpu).

SALMONN reads 16 kHz mono audio, pads it to at least 1 s and cuts it at 30 s; Whisper gets the
log-mel spectrogram of the clip padded to 30 s (transformers' WhisperFeatureExtractor, as the
authors call it), BEATs gets the raw samples and computes Kaldi filter banks itself
(`torchaudio.compliance.kaldi.fbank` with num_mel_bins=128, 25 ms frames, 10 ms shift).
`kaldi_fbank` reimplements exactly that call with torch operations only;
tests/test_salmonn_parity.py checks it against torchaudio's own kaldi.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["kaldi_fbank", "prepare_clip"]

SAMPLE_RATE = 16000


def prepare_clip(
    audio: np.ndarray, min_seconds: float = 1.0, max_seconds: float = 30.0, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """The authors' `prepare_one_sample`: pad to at least `min_seconds` (zeros at the end), cut at `max_seconds`."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(audio) < int(sr * min_seconds):
        audio = np.concatenate([audio, np.zeros(int(sr * min_seconds) - len(audio), dtype=np.float32)])
    return audio[: int(sr * max_seconds)]


def _mel(freq: torch.Tensor | float):
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


def _mel_banks(
    num_bins: int, padded_window: int, sample_rate: float, low_freq: float = 20.0, high_freq: float = 0.0
) -> torch.Tensor:
    """Kaldi's triangular mel filters, (num_bins, padded_window // 2 + 1); the Nyquist column is zero."""
    num_fft_bins = padded_window // 2
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    fft_bin_width = sample_rate / padded_window
    mel_low, mel_high = _mel(low_freq), _mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float32).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1.0) * delta, mel_low + (b + 2.0) * delta
    mel = _mel(fft_bin_width * torch.arange(num_fft_bins, dtype=torch.float32)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))


def kaldi_fbank(
    waveform: torch.Tensor,
    num_mel_bins: int = 128,
    sample_frequency: float = 16000.0,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
) -> torch.Tensor:
    """Kaldi filter-bank features of a 1-D waveform, (frames, num_mel_bins), with torchaudio's defaults:
    no dither, DC offset removed, pre-emphasis 0.97, Povey window, FFT size rounded up to a power of
    two, power spectrum, 20 Hz..Nyquist, log with float epsilon floor, snip_edges."""
    waveform = waveform.reshape(-1)
    window_size = int(sample_frequency * frame_length_ms * 0.001)
    window_shift = int(sample_frequency * frame_shift_ms * 0.001)
    padded = 1 << (window_size - 1).bit_length()
    if waveform.numel() < window_size:
        return waveform.new_zeros(0, num_mel_bins)
    n_frames = 1 + (waveform.numel() - window_size) // window_shift
    frames = waveform.as_strided((n_frames, window_size), (window_shift * waveform.stride(0), waveform.stride(0)))
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.nn.functional.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)[:, :-1]
    frames = frames - 0.97 * previous
    window = torch.hann_window(window_size, periodic=False, dtype=waveform.dtype, device=waveform.device).pow(0.85)
    frames = torch.nn.functional.pad(frames * window, (0, padded - window_size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = _mel_banks(num_mel_bins, padded, sample_frequency).to(device=waveform.device, dtype=waveform.dtype)
    energies = power @ banks.T
    eps = torch.tensor(torch.finfo(torch.float).eps, dtype=energies.dtype, device=energies.device)
    return torch.maximum(energies, eps).log()
