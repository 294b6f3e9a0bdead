"""Prosody and voice activity of a 16 kHz mono WAV: loudness, pitch, speaking rate, pauses.

Pitch and intensity come from Praat (via Parselmouth), the field's reference tools; voice activity
from WebRTC's VAD. Speaking rate counts syllable nuclei the way De Jong & Wempe's Praat script does:
intensity peaks that stand out from their surroundings by 2 dB and fall on voiced speech. Beside them,
openSMILE's eGeMAPSv02 functionals (Eyben et al. 2016), the affective-computing field's standard
minimal set: all 88 are kept, so rows compare with the literature's (loudness, F0 in semitones, jitter,
shimmer, HNR, alpha ratio, Hammarberg index, spectral slopes, formants, MFCCs, voiced-segment rates).
"""

from __future__ import annotations

import math
import wave
from functools import cache

import numpy as np

from schemas.signals import AudioSignals

VAD_FRAME_S = 0.03  # WebRTC VAD accepts 10, 20 or 30 ms frames
MIN_PAUSE_S = 0.3
HANGOVER_FRAMES = 3  # bridge 90 ms dips inside words, as VAD front-ends usually do
VOICE_TRACK_STEP_S = 0.1  # the voice-activity track's step: a multiple of 10 ms, like the VAD frame


def read_pcm16(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path, "rb") as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        rate = handle.getframerate()
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16), rate


def speech_mask(samples: np.ndarray, rate: int, aggressiveness: int = 2) -> np.ndarray:
    """One boolean per 30 ms frame: speech or not."""
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    step = int(rate * VAD_FRAME_S)
    frames = [samples[i : i + step] for i in range(0, len(samples) - step + 1, step)]
    raw = np.array([vad.is_speech(f.tobytes(), rate) for f in frames], dtype=bool)
    # Smooth: a frame is speech when speech is within HANGOVER_FRAMES of it on both sides.
    mask = raw.copy()
    idx = np.flatnonzero(raw)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= HANGOVER_FRAMES + 1:
            mask[a:b] = True
    return mask


def voice_track(mask: np.ndarray, seconds: float, step_s: float = VOICE_TRACK_STEP_S) -> list[float]:
    """Share of each `step_s` step of the track that the VAD mask marks as speech (the unanalysed tail
    shorter than a VAD frame counts as silence)."""
    unit = 0.01  # both the VAD frame and the step are whole multiples of 10 ms
    per_frame, per_step = round(VAD_FRAME_S / unit), round(step_s / unit)
    steps = math.ceil(round(seconds / step_s, 6))
    fine = np.zeros(steps * per_step, dtype=np.float64)
    covered = np.repeat(mask.astype(np.float64), per_frame)[: fine.size]
    fine[: covered.size] = covered
    return [round(float(v), 2) for v in fine.reshape(steps, per_step).mean(axis=1)]


@cache
def _egemaps_extractor():  # building it loads the configuration (~0.4 s): once per worker process
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
    )


def egemaps(samples: np.ndarray, rate: int) -> dict[str, float]:
    """The eGeMAPSv02 functionals of the track, by openSMILE's feature names (6 significant digits, so stored
    rows and the corpus norms' hash are the same on every machine)."""
    table = _egemaps_extractor().process_signal(samples.astype(np.float32) / 32768.0, rate)
    values = {str(name): float(table[name].iloc[0]) for name in table.columns}
    return {name: float(f"{v:.6g}") for name, v in values.items() if math.isfinite(v)}


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def measure_audio(path: str) -> AudioSignals:
    """Runs in a worker process (Praat and the VAD are native code)."""
    import parselmouth
    from scipy.signal import find_peaks

    samples, rate = read_pcm16(path)
    seconds = len(samples) / rate
    mask = speech_mask(samples, rate) if len(samples) >= rate * VAD_FRAME_S else np.zeros(0, dtype=bool)
    speech_s = float(mask.sum() * VAD_FRAME_S)
    runs = _runs(mask)
    pauses = sum(1 for (_, end), (start, _) in zip(runs[:-1], runs[1:]) if (start - end) * VAD_FRAME_S >= MIN_PAUSE_S)
    signals = AudioSignals(
        seconds=round(seconds, 3),
        speech_seconds=round(speech_s, 3),
        speech_ratio=round(speech_s / seconds, 4) if seconds else 0.0,
        pauses=pauses,
        voice_track_step_s=VOICE_TRACK_STEP_S,
        voice_track=voice_track(mask, seconds),
    )
    if speech_s < 0.2 or float(np.abs(samples).max(initial=0)) == 0:
        return signals

    sound = parselmouth.Sound(samples.astype(np.float64) / 32768.0, sampling_frequency=rate)
    pitch = sound.to_pitch(time_step=0.01, pitch_floor=75.0, pitch_ceiling=600.0)
    intensity = sound.to_intensity(minimum_pitch=75.0, time_step=0.01)

    def in_speech(times: np.ndarray) -> np.ndarray:
        frames = np.minimum((times / VAD_FRAME_S).astype(int), len(mask) - 1)
        return mask[frames]

    db_times, db = intensity.xs(), intensity.values[0]
    speech_db = db[in_speech(db_times) & (db > 0)]  # Praat reports digital silence far below 0 dB
    f0_times, f0 = pitch.xs(), pitch.selected_array["frequency"]
    voiced = (f0 > 0) & in_speech(f0_times)
    if speech_db.size:
        signals.loudness_db = round(float(np.median(speech_db)), 2)
        signals.loudness_range_db = round(float(np.percentile(speech_db, 95) - np.percentile(speech_db, 5)), 2)
    if voiced.sum() >= 5:
        f = f0[voiced]
        signals.pitch_hz = round(float(np.median(f)), 1)
        signals.pitch_range_semitones = round(float(12 * np.log2(np.percentile(f, 90) / np.percentile(f, 10))), 2)
    # Syllable nuclei: prominent intensity peaks, above the speech's median, where the voice is voiced.
    peaks, _ = find_peaks(db, prominence=2.0)
    if speech_db.size:
        floor = float(np.median(speech_db)) - 6.0
        voiced_at = f0[np.minimum(np.searchsorted(f0_times, db_times[peaks]), len(f0) - 1)] > 0
        nuclei = [p for p, v in zip(peaks, voiced_at) if v and db[p] > floor and in_speech(db_times[p : p + 1])[0]]
        signals.speaking_rate = round(len(nuclei) / speech_s, 2)
    signals.egemaps = egemaps(samples, rate)
    return signals
