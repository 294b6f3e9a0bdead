"""A voice read against its corpus: arousal and its evidence relative to the corpus's own speech.

Absolute thresholds (65 dB, 8 semitones) say little across recordings: broadcast and film audio is
levelled, so nearly every real clip is "loud" and "wide-ranged". Instead, each cue is a robust z-score
against the corpus's median and interquartile range (IQR / 1.349 estimates a standard deviation and,
unlike one, is not pulled by a few shouting or silent clips). Arousal is the weighted mean of the cues
(loudness, pitch level, pitch range, speaking rate, voice quality), squashed into -1..1.

Below MIN_CORPUS_CLIPS clips with speech, a median and IQR mean little, so REFERENCE values stand in and
`CorpusNorms.source` says so; the evidence then compares with "typical speech", not "the corpus".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cache

import numpy as np

from schemas.signals import AcousticReading, AudioSignals, CorpusNorms, FeatureNorm

# Bump when a reading changes for the same measurements and norms: the answers made from readings re-run.
READING_VERSION = "1.0.0"
MIN_CORPUS_CLIPS = 10  # clips with speech below which the corpus's quartiles are too unstable to judge by

# Praat's measurements (AudioSignals fields) that are normed; eGeMAPS functionals are normed by their own names.
PRAAT_FEATURES = ("loudness_db", "loudness_range_db", "pitch_hz", "pitch_range_semitones", "speaking_rate")

# Reference values (median, IQR) for when the corpus is too small: approximate figures for levelled
# broadcast/film speech of mixed speakers, as the MER clips are. Praat loudness: 10 of 17 real MER clips
# measured >= 65 dB and 15 of 17 >= 8 semitones of F0 range (issue 13); speaking rate: conversational
# speech runs at ~4-5 syllables/s; F0: men ~110 Hz, women ~210 Hz (mixed median ~160 Hz, i.e. ~30 semitones
# above 27.5 Hz). eGeMAPS voice quality: alpha ratio about -12 dB and Hammarberg index about 22 dB on
# voiced speech (Eyben et al. 2016 report their spread by arousal). These are a fallback, not a calibration.
REFERENCE: dict[str, tuple[float, float]] = {
    "loudness_db": (65.0, 6.0),
    "loudness_range_db": (25.0, 8.0),
    "pitch_hz": (160.0, 80.0),
    "pitch_range_semitones": (10.0, 5.0),
    "speaking_rate": (4.5, 1.5),
    "loudness_sma3_amean": (1.0, 0.8),
    "F0semitoneFrom27.5Hz_sma3nz_amean": (30.0, 9.0),
    "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2": (4.0, 3.0),
    "VoicedSegmentsPerSec": (3.0, 1.5),
    "alphaRatioV_sma3nz_amean": (-12.0, 6.0),
    "hammarbergIndexV_sma3nz_amean": (22.0, 8.0),
}

# Each cue of arousal: its weight, and the features that can measure it (first one present in both the
# clip and the norms wins; Praat's speech-only measures first, eGeMAPS where Praat measured nothing).
# Voice quality is "tension": aroused speech puts more energy above 1 kHz (higher alpha ratio, lower
# Hammarberg index), Eyben et al. 2016 and Scherer's vocal-effort findings.
CUES: dict[str, tuple[float, tuple[tuple[str, int], ...]]] = {
    "loudness": (0.3, (("loudness_db", +1), ("loudness_sma3_amean", +1))),
    "pitch range": (0.2, (("pitch_range_semitones", +1), ("F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2", +1))),
    "pitch level": (0.15, (("F0semitoneFrom27.5Hz_sma3nz_amean", +1), ("pitch_hz", +1))),
    "speaking rate": (0.15, (("speaking_rate", +1), ("VoicedSegmentsPerSec", +1))),
    "voice quality": (0.2, (("alphaRatioV_sma3nz_amean", +1), ("hammarbergIndexV_sma3nz_amean", -1))),
}

# Words for a cue above / below the corpus's middle half. Fixed phrases (no numbers) so the template
# translator can render them through a glossary; "{ref}" is "most of the corpus" or "typical speech".
WORDS: dict[str, tuple[str, str]] = {
    "loudness": ("louder than {ref}", "softer than {ref}"),
    "pitch range": ("pitch range wider than {ref}", "pitch range flatter than {ref}"),
    "pitch level": ("pitch higher than {ref}", "pitch lower than {ref}"),
    "speaking rate": ("faster than {ref}", "slower than {ref}"),
    "voice quality": ("tenser, brighter voice than {ref}", "laxer, duller voice than {ref}"),
}
REFS = ("most of the corpus", "typical speech")
EVIDENCE = tuple(w.format(ref=r) for pair in WORDS.values() for w in pair for r in REFS)  # every phrase said

QUARTILE_Z = 0.6745  # a robust z of this size lies on the corpus's upper (or lower) quartile
LEVEL_Z = 0.6  # mean cue z from which arousal reads high (or low): about a quartile away on every cue
SQUASH = 1.5  # arousal = tanh(mean z / SQUASH): the upper quartile on every cue reads ~0.4, 1.5 IQR ~0.9
IQR_FLOOR = 0.25  # share of the reference IQR below which a corpus's spread is not trusted (a uniform corpus)


def _features(a: AudioSignals) -> dict[str, float]:
    out = {name: getattr(a, name) for name in PRAAT_FEATURES if getattr(a, name) is not None}
    out.update(a.egemaps or {})
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def _has_speech(a: AudioSignals | None) -> bool:
    # Prosody is measured from 0.2 s of speech on (prosody.py): a clip without it says nothing of the voice.
    return a is not None and a.loudness_db is not None


def corpus_norms(audios: Iterable[AudioSignals | None]) -> CorpusNorms:
    """Median and IQR of every measured feature over the clips with speech (or REFERENCE below
    MIN_CORPUS_CLIPS of them)."""
    values: dict[str, list[float]] = {}
    clips = 0
    for a in audios:
        if not _has_speech(a):
            continue
        clips += 1
        for name, value in _features(a).items():
            values.setdefault(name, []).append(value)
    if clips < MIN_CORPUS_CLIPS:
        return CorpusNorms(
            clips=clips,
            features={k: FeatureNorm(median=m, iqr=i, clips=0) for k, (m, i) in REFERENCE.items()},
            source=f"reference values ({clips} clips with speech; {MIN_CORPUS_CLIPS} needed for corpus norms)",
        )
    features = {}
    for name, vs in sorted(values.items()):
        if len(vs) < MIN_CORPUS_CLIPS:  # a feature few clips measured is judged by its reference, if any
            if name in REFERENCE:
                features[name] = FeatureNorm(median=REFERENCE[name][0], iqr=REFERENCE[name][1], clips=0)
            continue
        q1, med, q3 = np.percentile(vs, [25, 50, 75])
        features[name] = FeatureNorm(median=_round(med), iqr=_round(q3 - q1), clips=len(vs))
    return CorpusNorms(clips=clips, features=features, source=f"{clips} clips with speech of this corpus")


def _round(x: float) -> float:
    return float(f"{float(x):.6g}")  # stable across platforms, so the norms' hash is too


def robust_z(value: float, norm: FeatureNorm, name: str) -> float:
    floor = IQR_FLOOR * REFERENCE[name][1] if name in REFERENCE else 1e-9
    sigma = max(norm.iqr, floor) / 1.349
    return (value - norm.median) / sigma if sigma > 0 else 0.0


@cache
def reference_norms() -> CorpusNorms:
    """The REFERENCE values as norms (what a corpus too small for its own reads against), built once."""
    return corpus_norms([])


def read_voice(audio: AudioSignals | None, norms: CorpusNorms | None) -> AcousticReading:
    """Arousal of one clip's voice relative to the norms (REFERENCE values when norms is None)."""
    if not _has_speech(audio):
        return AcousticReading()
    if norms is None:
        norms = reference_norms()
    measured = _features(audio)
    total = weight_sum = 0.0
    evidence = []
    for cue, (weight, options) in CUES.items():
        zs = [
            (sign * robust_z(measured[name], norms.features[name], name), norms.features[name].clips > 0)
            for name, sign in options
            if name in measured and name in norms.features
        ]
        if cue != "voice quality":
            zs = zs[:1]  # one measure per cue; voice quality averages its two (alpha ratio, Hammarberg)
        if not zs:
            continue
        z = max(-3.0, min(3.0, sum(v for v, _ in zs) / len(zs)))  # one extreme cue must not decide alone
        total += weight * z
        weight_sum += weight
        if abs(z) >= QUARTILE_Z:
            ref = REFS[0] if all(from_corpus for _, from_corpus in zs) else REFS[1]
            evidence.append(WORDS[cue][0 if z > 0 else 1].format(ref=ref))
    if not weight_sum:
        return AcousticReading()
    mean_z = total / weight_sum
    level = "high" if mean_z >= LEVEL_Z else "low" if mean_z <= -LEVEL_Z else "mid"
    return AcousticReading(arousal=round(math.tanh(mean_z / SQUASH), 3), level=level, evidence=evidence)
