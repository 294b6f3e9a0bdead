"""Audio/visual match: the visible face speaks when the voice speaks.

Rejects the successor pipeline's "mismatched audio and video" (MER-Caption+ used an active-speaker model): speech
with no face on screen, a voice over a still face (voice-over, a photo, a listener), a mouth that moves but not with
the voice (an off-screen speaker), and a face with no speech. Measured by the active-speaker check
(annotators/signals/active_speaker.py: the mouth's opening correlated with the voice track), voice activity and the
face detector (schemas/signals.py). Rows measured before the active-speaker check, and clips it cannot judge (too
few frames, a face too small to read its lips), are judged by the shares of speech and face alone."""

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
    speaker = sig.active_speaker
    if talks and speaker is not None and speaker.verdict not in ("no_speech", "uncertain"):
        return _active_speaker(speaker, said, cfg)
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
    unjudged = f"; active speaker {speaker.verdict}: {speaker.evidence}" if speaker is not None and talks else ""
    return verdict("av_match", problems, f"a talking face: {said}{unjudged}", score=round(score, 3), threshold=1.0)


def _active_speaker(speaker, said: str, cfg: AVMatchGate) -> GateVerdict:
    score = speaker.score if speaker.score is not None else -1.0
    shown = f"active-speaker score {speaker.score:.2f}" if speaker.score is not None else "no active-speaker score"
    problems = []
    if speaker.verdict == "no_face":
        problems.append(f"someone talks but no face is visible ({said}; {speaker.evidence})")
    elif speaker.verdict == "still_face":
        problems.append(f"a voice over a still face, the face does not speak ({shown}; {speaker.evidence})")
    elif score < cfg.min_speaker_score:
        problems.append(
            f"the visible face does not speak with the voice, {shown} < {cfg.min_speaker_score} "
            f"({speaker.evidence}; an off-screen voice?)"
        )
    return verdict(
        "av_match",
        problems,
        f"the visible face speaks: {shown} ({speaker.evidence}; {said})",
        score=round(score, 3),
        threshold=cfg.min_speaker_score,
    )
