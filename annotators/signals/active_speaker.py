"""Is the visible face the one speaking? The mouth's opening over time against the voice.

The successor corpus (MER-Caption+) held back "mismatched audio and video" with an active-speaker model (TalkNet);
no such model ships its weights on the registry, so this is the classic audio-visual synchrony measure instead: the
correlation of the lip gap (VisualSignals.mouth_opening, per analysed frame) with the voice (the voice-activity
track, AudioSignals.voice_track, weighted by the speech's loudness envelope where the audio is at hand, so the
syllables inside a stretch of speech count, not only its start and end). A speaking mouth opens with the voice's
loud parts and closes in its pauses; the best correlation over small shifts (the mouth leads the sound by up to a
few hundred milliseconds) is the score, -1..1.

Verdicts:
- no_speech: the voice track has too little speech to judge (the A/V gate's own speech rule then applies);
- no_face: a face is found in too few of the frames where the voice speaks (speech over no face, off-screen voice);
- still_face: a face is there but its mouth does not move (voice-over on a still face, a photo, a listener);
- speaks / out_of_sync: the mouth moves, and its movement follows the voice (score >= MIN_SCORE) or does not;
- uncertain: too few frames with a face to compare, or a face too small (MIN_FACE_SIZE) for the landmark model to
  place the lips reliably.
"""

from __future__ import annotations

import numpy as np

from schemas.signals import ActiveSpeaker, AudioSignals, VisualSignals

MIN_SPEECH_S = 0.5  # less voiced speech than this is no speech to compare with
MIN_FACE_IN_SPEECH = 0.3  # a face in less than this share of the speaking frames: no face
MIN_FACE_SIZE = 0.25  # a face box lower than this share of the frame: its lips are a few pixels, the gap unreliable
STILL_MOUTH = 0.04  # lip gap spread (90th - 10th percentile, inter-ocular distances) of a mouth that does not move
MIN_FRAMES = 8
MIN_SCORE = 0.2  # the correlation from which the mouth follows the voice
MAX_LAG_S = 0.3
LAG_STEP_S = 0.04
ENVELOPE_WINDOW_S = 0.08


def _activity(audio: AudioSignals, times: np.ndarray) -> np.ndarray:
    """Voice activity (0..1) at each time, from the voice track."""
    track = np.asarray(audio.voice_track, dtype=np.float64)
    if track.size == 0:
        return np.zeros(len(times))
    step = audio.voice_track_step_s or 0.1
    return track[np.clip((times / step).astype(int), 0, track.size - 1)]


def _envelope(wav: str | None):
    """A function time -> loudness of the audio around that time (0..1 between its quiet floor and its loud
    parts), or None without audio."""
    if not wav:
        return None
    from annotators.signals.prosody import read_pcm16

    samples, rate = read_pcm16(wav)
    if samples.size == 0:
        return None
    x = samples.astype(np.float64) / 32768.0
    hop = int(0.01 * rate)
    win = int(ENVELOPE_WINDOW_S * rate)
    power = np.convolve(x**2, np.ones(win) / win, mode="same")[::hop]
    db = 10 * np.log10(power + 1e-10)
    floor, loud = np.percentile(db, 10), np.percentile(db, 95)
    level = np.clip((db - floor) / max(loud - floor, 1e-6), 0, 1)
    return lambda t: level[np.clip((np.asarray(t) / 0.01).astype(int), 0, level.size - 1)]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def active_speaker(audio: AudioSignals | None, visual: VisualSignals | None, wav: str | None = None) -> ActiveSpeaker:
    """Runs in a worker process (reads the WAV) or anywhere with wav=None (the voice track alone)."""
    speech_s = audio.speech_seconds if audio else 0.0
    if audio is None or speech_s < MIN_SPEECH_S or not audio.voice_track:
        return ActiveSpeaker(verdict="no_speech", evidence=f"{speech_s:.1f} s of speech: nothing to compare")
    if visual is None or not visual.frame_times or len(visual.mouth_opening) != len(visual.frame_times):
        return ActiveSpeaker(verdict="uncertain", evidence="no mouth track was measured")
    times = np.asarray(visual.frame_times, dtype=np.float64)
    mouth = np.array([np.nan if m is None else m for m in visual.mouth_opening], dtype=np.float64)
    speaking = _activity(audio, times) >= 0.5
    has_face = ~np.isnan(mouth)
    face_in_speech = float(has_face[speaking].mean()) if speaking.any() else 0.0
    said = f"a face in {face_in_speech:.0%} of the {int(speaking.sum())} frames where the voice speaks"
    if speaking.any() and face_in_speech < MIN_FACE_IN_SPEECH:
        return ActiveSpeaker(verdict="no_face", frames_compared=int(has_face.sum()), evidence=f"{said}: no face")
    if has_face.sum() < MIN_FRAMES:
        return ActiveSpeaker(
            verdict="uncertain", frames_compared=int(has_face.sum()), evidence=f"{said}: too few frames to compare"
        )
    if visual.face_size is not None and visual.face_size < MIN_FACE_SIZE:
        return ActiveSpeaker(
            verdict="uncertain",
            frames_compared=int(has_face.sum()),
            evidence=f"{said}, too small to read its lips ({visual.face_size:.0%} of the frame height)",
        )
    spread = float(np.percentile(mouth[has_face], 90) - np.percentile(mouth[has_face], 10))
    envelope = _envelope(wav)
    t, m = times[has_face], mouth[has_face]
    scores = []
    for lag in np.arange(-MAX_LAG_S, MAX_LAG_S + 1e-9, LAG_STEP_S):
        voice = _activity(audio, t + lag)
        if envelope is not None:
            voice = voice * envelope(t + lag)
        scores.append((_pearson(m, voice), round(float(lag), 2)))
    score, lag = max(scores)
    compared = int(has_face.sum())
    if spread < STILL_MOUTH:
        return ActiveSpeaker(
            verdict="still_face",
            score=round(score, 3),
            lag_s=lag,
            frames_compared=compared,
            evidence=f"{said}, but its mouth does not move (lip gap spread {spread:.3f})",
        )
    verdict = "speaks" if score >= MIN_SCORE else "out_of_sync"
    follows = "follows" if verdict == "speaks" else "does not follow"
    return ActiveSpeaker(
        verdict=verdict,
        score=round(score, 3),
        lag_s=lag,
        frames_compared=compared,
        evidence=f"the mouth's opening {follows} the voice (r = {score:.2f} at {lag:+.2f} s over {compared} frames)",
    )
