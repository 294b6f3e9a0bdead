"""Audio/visual match: a human-centric clip shows the face of the person who speaks.

Rejects the successor pipeline's "mismatched audio and video": speech with no face on screen, or a
face with no speech, measured by voice activity and a face detector (schemas/signals.py)."""

from __future__ import annotations

from gates.base import verdict
from schemas.config import AVMatchGate
from schemas.gates import GateVerdict
from schemas.row import CoarseRow


def check(row: CoarseRow, cfg: AVMatchGate) -> GateVerdict:
    sig = row.signals
    if sig is None or sig.visual is None:
        return verdict("av_match", ["no measurements for this clip"], "")
    speech = sig.audio.speech_ratio if sig.audio else 0.0
    face = sig.visual.face_ratio
    talks, shows = speech >= cfg.min_speech_ratio, face >= cfg.min_face_ratio
    said = f"speech in {speech:.0%} of the track, a face in {face:.0%} of {sig.visual.frames} frames"
    problems = []
    if talks and not shows:
        problems.append(f"someone talks but no face is visible ({said})")
    elif shows and not talks:
        problems.append(f"a face is visible but there is no speech ({said})")
    elif not talks and not shows:
        problems.append(f"neither speech nor a face ({said})")
    # 1.0 = both just at their thresholds; the weaker side decides.
    score = min(
        speech / cfg.min_speech_ratio if cfg.min_speech_ratio else 1.0,
        face / cfg.min_face_ratio if cfg.min_face_ratio else 1.0,
    )
    return verdict("av_match", problems, f"a talking face: {said}", score=round(score, 3), threshold=1.0)
