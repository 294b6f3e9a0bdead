"""Acoustic and visual clues written from measurements: what was measured, and what it suggests.

Prosody speaks to arousal more than to valence, so the acoustic states stay coarse (excited / tired /
neutral); a visible smile is the one visual cue read as valence. These are an independent opinion
for cross-validation, not a replacement for a model that understands the scene.
"""

from __future__ import annotations

from annotators.signals.vocabulary import templates
from schemas.replies import ClueReply
from schemas.signals import AudioSignals, VisualSignals


def audio_evidence(a: AudioSignals) -> list[str]:
    t = templates().thresholds
    out = []
    if a.loudness_db is not None:
        out.append(
            "loud voice"
            if a.loudness_db >= t["loud_db"]
            else "soft voice"
            if a.loudness_db < t["soft_db"]
            else "moderate loudness"
        )
    if a.pitch_range_semitones is not None:
        r = a.pitch_range_semitones
        out.append(
            "wide pitch range"
            if r >= t["wide_range_semitones"]
            else "flat intonation"
            if r < t["flat_range_semitones"]
            else "moderate intonation"
        )
    if a.speaking_rate is not None:
        s = a.speaking_rate
        out.append(
            "fast speech"
            if s >= t["fast_syllables_per_s"]
            else "slow speech"
            if s < t["slow_syllables_per_s"]
            else "moderate pace"
        )
    if a.speech_seconds and a.pauses / a.speech_seconds >= t["pauses_per_speech_s"]:
        out.append("frequent pauses")
    if not out and speaks(a):  # too little speech for prosody to be measured, but speech it is
        out.append("brief speech")
    return out


def audio_states(evidence: list[str]) -> list[str]:
    arousal = sum(+1 for e in evidence if e in ("loud voice", "wide pitch range", "fast speech"))
    arousal -= sum(1 for e in evidence if e in ("soft voice", "flat intonation", "slow speech", "frequent pauses"))
    return ["excited"] if arousal >= 2 else ["tired"] if arousal <= -2 else []


MIN_SPEECH_S = 0.2  # voiced speech enough to speak of in any track
# A track too short to hold MIN_SPEECH_S (a 0.2 s clip holds at most 0.18 s of 30 ms VAD frames) speaks when
# speech fills most of it.
MIN_SHORT_TRACK_SPEECH_RATIO = 0.5


def speaks(a: AudioSignals | None) -> bool:
    if a is None or a.speech_seconds <= 0:
        return False
    return a.speech_seconds >= MIN_SPEECH_S or a.speech_ratio >= MIN_SHORT_TRACK_SPEECH_RATIO


def acoustic_clue(a: AudioSignals | None) -> ClueReply:
    if not speaks(a):
        return ClueReply(clues="No speech is heard in the audio track.", emotional_states=[])
    evidence = audio_evidence(a)
    measured = f"Speech fills {a.speech_ratio:.0%} of the track ({a.speech_seconds:.1f} s, {a.pauses} pauses). "
    if a.loudness_db is None:  # prosody is measured from 0.2 s of speech on (annotators/signals/prosody.py)
        measured += "Too little speech to measure its prosody."
    else:
        measured += (
            f"Loudness {a.loudness_db} dB, median pitch {a.pitch_hz} Hz, "
            f"pitch range {a.pitch_range_semitones} semitones, {a.speaking_rate} syllables per second."
        )
    return ClueReply(
        clues=f"{measured} Evidence: {', '.join(evidence) or 'none'}.", emotional_states=audio_states(evidence)
    )


def face_visible(v: VisualSignals | None) -> bool:
    return v is not None and v.face_ratio >= templates().thresholds["face_ratio"]


def visual_evidence(v: VisualSignals) -> list[str]:
    t = templates().thresholds
    return [
        "a smile" if v.smile_ratio >= t["smile_ratio"] else "no smile",
        "much movement" if v.motion >= t["motion"] else "little movement",
    ]


def visual_states(evidence: list[str]) -> list[str]:
    states = ["happy"] if "a smile" in evidence else []
    return states + (["excited"] if "much movement" in evidence else [])


def visual_clue(v: VisualSignals | None) -> ClueReply:
    if not face_visible(v):
        seen = f" (a face in {v.face_ratio:.0%} of {v.frames} frames)" if v else ""
        return ClueReply(clues=f"No face is clearly visible in the sampled frames{seen}.", emotional_states=[])
    evidence = visual_evidence(v)
    measured = (
        f"A frontal face is visible in {v.face_ratio:.0%} of {v.frames} sampled frames, "
        f"smiling in {v.smile_ratio:.0%} of them; frame-to-frame motion {v.motion:.3f}."
    )
    return ClueReply(clues=f"{measured} Evidence: {', '.join(evidence)}.", emotional_states=visual_states(evidence))
