"""Acoustics: openSMILE's eGeMAPS beside Praat, and a voice read relative to its corpus, not fixed thresholds.

The voices are espeak-ng's (data/synth_clips.py), rendered louder or softer, higher or lower, and measured by the
engine's own measurement (annotators/signals/prosody.py: WebRTC VAD, Praat, openSMILE) as a build measures a clip.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from annotators.signals.acoustics import MIN_CORPUS_CLIPS, corpus_norms, read_voice
from annotators.signals.prosody import measure_audio

SENTENCES = [
    "Why do you always treat me like this?",
    "I finally passed the exam, I can hardly believe it.",
    "We will meet again tomorrow at the station.",
    "Nobody told me that the meeting was cancelled.",
]

# The interpretable eGeMAPS functionals the README names (openSMILE's own feature names).
NAMED = [
    "loudness_sma3_amean",
    "F0semitoneFrom27.5Hz_sma3nz_amean",
    "F0semitoneFrom27.5Hz_sma3nz_stddevNorm",
    "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2",
    "jitterLocal_sma3nz_amean",
    "shimmerLocaldB_sma3nz_amean",
    "HNRdBACF_sma3nz_amean",
    "alphaRatioV_sma3nz_amean",
    "hammarbergIndexV_sma3nz_amean",
    "slopeV0-500_sma3nz_amean",
    "VoicedSegmentsPerSec",
    "MeanUnvoicedSegmentLength",
]


def voice(folder: Path, name: str, text: str, *, gain_db: float = 0.0, pitch: int = 50, silence_s: float = 0.0):
    """espeak-ng speaking `text` (pitch 0..99, espeak's default 50), as media prep hands audio to the
    measurements: 16 kHz mono 16-bit PCM; `gain_db` scales it, `silence_s` of digital silence follow."""
    raw, wav = folder / f"{name}-raw.wav", folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-p", str(pitch), "-w", str(raw), text], check=True)
    audio_filter = f"volume={gain_db}dB,apad=pad_dur={silence_s}"
    subprocess.run(
        ["ffmpeg", "-y", "-v", "error", "-i", str(raw), "-af", audio_filter, "-ac", "1", "-ar", "16000"]
        + ["-acodec", "pcm_s16le", str(wav)],
        check=True,
    )
    return measure_audio(str(wav))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """One clip at -10 dB; a corpus of the same sentences 6-12 dB softer, and one 4-10 dB louder."""
    d = tmp_path_factory.mktemp("acoustics")
    n = MIN_CORPUS_CLIPS // len(SENTENCES) + 1  # renderings per sentence: enough clips for corpus norms
    softer = [voice(d, f"soft{i}{j}", s, gain_db=-16 - 2 * j) for i, s in enumerate(SENTENCES) for j in range(n)]
    louder = [voice(d, f"loud{i}{j}", s, gain_db=-6 + 2 * j) for i, s in enumerate(SENTENCES) for j in range(n)]
    return {"clip": voice(d, "clip", SENTENCES[1], gain_db=-10), "softer": softer, "louder": louder}


def test_a_voice_reads_aroused_among_softer_voices_and_subdued_among_louder_ones(corpora):
    clip = corpora["clip"]
    among_softer = read_voice(clip, corpus_norms(corpora["softer"] + [clip]))
    among_louder = read_voice(clip, corpus_norms(corpora["louder"] + [clip]))
    # The same measurement (the same dB), judged by two corpora.
    assert among_softer.arousal > among_louder.arousal
    assert among_softer.level == "high" and among_louder.level == "low"
    assert "louder than most of the corpus" in among_softer.evidence
    assert "softer than most of the corpus" in among_louder.evidence


def test_corpus_norms_are_the_median_and_spread_of_the_clips_with_speech(corpora, tmp_path):
    silent = voice(tmp_path, "silent", "Quiet.", gain_db=-200)  # digital silence: no speech to measure
    assert silent.loudness_db is None
    corpus = corpora["softer"] + [silent, None]
    norms = corpus_norms(corpus)
    speaking = [a for a in corpus if a is not None and a.loudness_db is not None]
    assert norms.clips == len(speaking) and str(len(speaking)) in norms.source and "corpus" in norms.source
    loudness = sorted(a.loudness_db for a in speaking)
    assert loudness[0] <= norms.features["loudness_db"].median <= loudness[-1]
    assert 0 < norms.features["loudness_db"].iqr <= loudness[-1] - loudness[0]
    assert "loudness_sma3_amean" in norms.features  # eGeMAPS features are normed beside Praat's
    silence = read_voice(silent, norms)
    assert silence.level == "unknown" and silence.arousal is None and silence.evidence == []


def test_a_corpus_too_small_for_norms_falls_back_to_reference_values_and_says_so(corpora):
    few = corpora["louder"][:3]
    norms = corpus_norms(few)
    assert norms.clips == 3 and "reference" in norms.source
    loud = read_voice(few[-1], norms)
    assert loud.level != "unknown" and all("the corpus" not in e for e in loud.evidence)
    # No norms at all (a clip annotated on its own): the same reference values.
    assert read_voice(few[-1], None) == loud


def test_egemaps_measures_the_named_functionals_and_follows_loudness_and_pitch(tmp_path):
    text = SENTENCES[0]
    plain = voice(tmp_path, "plain", text, gain_db=-12)
    louder = voice(tmp_path, "louder", text, gain_db=-2)
    higher = voice(tmp_path, "higher", text, gain_db=-12, pitch=85)
    assert len(plain.egemaps) == 88  # the eGeMAPSv02 functionals, whole
    assert all(math.isfinite(plain.egemaps[name]) for name in NAMED)
    assert louder.egemaps["loudness_sma3_amean"] > 1.5 * plain.egemaps["loudness_sma3_amean"]
    assert higher.egemaps["F0semitoneFrom27.5Hz_sma3nz_amean"] > plain.egemaps["F0semitoneFrom27.5Hz_sma3nz_amean"] + 2
    # Praat agrees on the direction: the two tools measure the same voice.
    assert louder.loudness_db > plain.loudness_db and higher.pitch_hz > plain.pitch_hz


def test_the_voice_track_follows_voice_activity_step_by_step(tmp_path):
    speech = voice(tmp_path, "then-silence", SENTENCES[2], gain_db=-6, silence_s=1.5)
    track, step = speech.voice_track, speech.voice_track_step_s
    assert len(track) == math.ceil(round(speech.seconds / step, 6))
    assert all(0.0 <= share <= 1.0 for share in track)
    assert sum(track) * step == pytest.approx(speech.speech_seconds, abs=step)
    assert max(track[:5]) == 1.0 and track[-10:] == [0.0] * 10  # speech first, then 1.5 s of silence
