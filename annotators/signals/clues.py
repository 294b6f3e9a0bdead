"""Acoustic and visual clues written from measurements: what was measured, in words, and what it suggests.

The voice is read against the corpus (annotators/signals/acoustics.py): arousal says how much energy the
voice has, not whether the feeling is good or bad, so the acoustic clue names no emotional state of its
own (the description combines it with the words and the face: annotators/signals/describe.py). The face
is read from its action units (FACS, from landmarks) and the facial-expression classifier's distribution:
a smile (AU12) reads happy, a strong expression class reads as itself. The rules and thresholds are data
(templates.toml [thresholds], [action_units]).
"""

from __future__ import annotations

import tomllib
from functools import cache

from annotators.signals.acoustics import read_voice
from annotators.signals.vocabulary import TEMPLATES_PATH, templates
from schemas.replies import ClueReply
from schemas.signals import AcousticReading, ActionUnit, AudioSignals, VisualSignals

# FER2013's classes (annotators/signals/expressions.py CLASSES) as the lexicon's heads.
EXPRESSION_HEADS = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "fearful",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprised",
    "neutral": "neutral",
}

MIN_SPEECH_S = 0.2  # voiced speech enough to speak of in any track
# A track too short to hold MIN_SPEECH_S (a 0.2 s clip holds at most 0.18 s of 30 ms VAD frames) speaks when
# speech fills most of it.
MIN_SHORT_TRACK_SPEECH_RATIO = 0.5


def speaks(a: AudioSignals | None) -> bool:
    if a is None or a.speech_seconds <= 0:
        return False
    return a.speech_seconds >= MIN_SPEECH_S or a.speech_ratio >= MIN_SHORT_TRACK_SPEECH_RATIO


def voice_reading(a: AudioSignals | None, reading: AcousticReading | None = None) -> AcousticReading:
    """The given reading, else the voice read against the reference values (no corpus norms to hand)."""
    return reading if reading is not None else read_voice(a, None)


def acoustic_clue(a: AudioSignals | None, reading: AcousticReading | None = None) -> ClueReply:
    if not speaks(a):
        return ClueReply(clues="No speech is heard in the audio track.", emotional_states=[])
    reading = voice_reading(a, reading)
    measured = f"Speech fills {a.speech_ratio:.0%} of the track ({a.speech_seconds:.1f} s, {a.pauses} pauses). "
    if a.loudness_db is None:  # prosody is measured from 0.2 s of speech on (annotators/signals/prosody.py)
        return ClueReply(clues=measured + "Too little speech to measure its prosody.", emotional_states=[])
    measured += (
        f"Loudness {a.loudness_db} dB, median pitch {a.pitch_hz} Hz, "
        f"pitch range {a.pitch_range_semitones} semitones, {a.speaking_rate} syllables per second."
    )
    if reading.arousal is None:
        return ClueReply(clues=measured, emotional_states=[])
    level = {"high": "raised", "low": "subdued", "mid": "neither raised nor subdued"}.get(reading.level, "unclear")
    evidence = f" ({', '.join(reading.evidence)})" if reading.evidence else ""
    if reading.level == "mid" and reading.evidence:  # the cues that stand out do not explain "neither"
        level, evidence = f"{level} overall", f", though some cues stand out{evidence}"
    said = f" Against the corpus the voice is {level}{evidence}: arousal {reading.arousal:+.2f}."
    # Arousal is energy, not valence: the voice alone names no state (see the module's docstring).
    return ClueReply(clues=measured + said, emotional_states=[])


@cache
def _tables(path=TEMPLATES_PATH) -> dict:
    # The tables only these annotators read ([action_units], [[rule]]); vocabulary.templates() reads the rest.
    return tomllib.loads(path.read_text(encoding="utf-8"))


def action_words() -> dict[str, dict[str, str]]:
    """FACS code -> {verb, what}: "the lip corners pull up" (AU12, a smile)."""
    return _tables()["action_units"]


def action_phrase(code: str) -> str:
    words = action_words()[code]
    return f"{words['verb']} ({words['what']})"


def state_rules() -> list[dict]:
    return _tables()["rule"]


def face_visible(v: VisualSignals | None) -> bool:
    return v is not None and v.face_ratio >= templates().thresholds["face_ratio"]


def action(v: VisualSignals, code: str) -> ActionUnit | None:
    return next((u for u in v.action_units if u.au == code), None)


def active_actions(v: VisualSignals) -> list[ActionUnit]:
    """The action units present in enough of the face frames to speak of (blinks are counted, not listed)."""
    share = templates().thresholds["action_unit_ratio"]
    return [u for u in v.action_units if u.au in action_words() and u.active_ratio >= share]


def smiles(v: VisualSignals) -> bool:
    return v.smile_ratio >= templates().thresholds["smile_ratio"]  # smile_ratio: AU12's share of the face frames


def strong_expression(v: VisualSignals | None, min_probability: float) -> tuple[str, float] | None:
    """The strongest non-neutral expression class (as a lexicon head) when its mean probability reaches the bar."""
    if v is None or not v.expressions:
        return None
    named = {k: p for k, p in v.expressions.items() if k != "neutral" and k in EXPRESSION_HEADS}
    if not named:
        return None
    best = max(named, key=named.get)
    return (EXPRESSION_HEADS[best], named[best]) if named[best] >= min_probability else None


def neutral_expression(v: VisualSignals | None, min_probability: float) -> bool:
    return bool(v and v.expressions and v.expressions.get("neutral", 0.0) >= min_probability)


def expression_ranking(v: VisualSignals) -> list[tuple[str, float]]:
    """The classes worth naming (probability at least `expression_mention`), strongest first, as lexicon heads."""
    floor = templates().thresholds["expression_mention"]
    ranked = sorted((v.expressions or {}).items(), key=lambda kv: -kv[1])
    return [(EXPRESSION_HEADS[k], p) for k, p in ranked if p >= floor and k in EXPRESSION_HEADS]


def face_states(v: VisualSignals | None) -> list[str]:
    """A smile reads happy; a strong expression class reads as itself (templates.toml [rules], face part)."""
    if not face_visible(v):
        return []
    t = templates().thresholds
    states = []
    strong = strong_expression(v, t["expression_probability"])
    if strong:
        states.append(strong[0])
    if smiles(v):
        states.append("happy")
    return list(dict.fromkeys(states))


def visual_clue(v: VisualSignals | None) -> ClueReply:
    if not face_visible(v):
        seen = f" (a face in {v.face_ratio:.0%} of {v.frames} frames)" if v else ""
        return ClueReply(clues=f"No face is clearly visible in the analysed frames{seen}.", emotional_states=[])
    t, words = templates().thresholds, action_words()
    found_by = f", found by {v.detector}" if v.detector else ""
    parts = [f"A face is visible in {v.face_ratio:.0%} of {v.frames} analysed frames{found_by}."]
    acts = [
        f"{words[u.au]['verb']} in {u.active_ratio:.0%} of the face frames ({words[u.au]['what']})"
        for u in active_actions(v)
    ]
    if not v.action_units:
        acts.append(f"smiling in {v.smile_ratio:.0%} of the face frames")
    if v.blinks is not None:
        acts.append(f"{v.blinks} blinks (AU45)")
    parts.append(f"In the face: {'; '.join(acts)}." if acts else "No facial action stands out.")
    pose = []
    if v.head_yaw_deg is not None and abs(v.head_yaw_deg) >= t["head_turn_deg"]:
        pose.append(f"the head is turned {abs(v.head_yaw_deg):.0f} degrees to the side")
    if v.head_movement_deg is not None:
        pose.append(f"the head pose varies by {v.head_movement_deg:.0f} degrees")
    pose.append(f"movement in the frame {v.motion:.2f} ({'much' if v.motion >= t['motion'] else 'little'})")
    parts.append("; ".join(pose).capitalize() + ".")
    ranking = expression_ranking(v)
    if ranking:
        said = ", ".join(f"{head} {p:.0%}" for head, p in ranking)
        parts.append(f"The expression classifier reads {said}.")
    return ClueReply(clues=" ".join(parts), emotional_states=face_states(v))
