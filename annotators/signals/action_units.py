"""Facial action units (FACS), eye closures and head pose from 68 landmarks per frame.

What OpenFace gives the MERR pipeline, measured here from the landmark geometry alone (written by hand: no
registry package computes AUs from dlib landmarks). Every distance is in inter-ocular distances (eye centre to eye
centre, after turning the face upright by its eye line), so it does not depend on the face's size in the frame.
Most actions are judged against the face's own neutral in the clip (a low or high percentile of the same measure):
a raised brow is higher than this face's brows usually are. Two are also judged against a population neutral,
because a face may hold them for the whole clip: lips apart (closed lips have no gap) and the smile (a neutral
mouth is about as wide as the eyes are apart, its corners level with the upper lip's inner edge), so a still
smiling photo measures a smile.

| AU | geometry | neutral |
|---|---|---|
| AU12 lip corner puller (smile) | mouth width, corners raised above the upper lip's inner edge | population; own |
| AU25 lips part | gap between the inner lips | population (closed lips) |
| AU26 jaw drop | eye line to chin, longer than usual | the clip's own |
| AU1_2 inner and outer brow raiser | brows above the eye line, higher than usual | the clip's own |
| AU4 brow lowerer | brows lower and closer together than usual, by more than the jitter | the clip's median |
| AU45 blink | eye aspect ratio (Soukupova and Cech 2016) under 60% of the open eye's, then open | the clip's median |

The 68-point fit jitters from frame to frame (a moving mouth shifts the whole fitted shape a little): a still photo
whose mouth alone moves must not read as blinks, frowns or a moving head. So AU4 starts only past the clip's own
jitter (a few median absolute deviations of the measure), and a blink needs the eye to all but close.

Head pose: cv2.solvePnP of nine landmarks that the jaw and lips do not move (nose bridge and tip, nostrils, the
eyes' corners) against a generic 3-D face, with a pinhole camera whose focal length is the frame width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.signals import ActionUnit

PRESENT = 0.35  # an action is present in a frame when its intensity (0..1) reaches this
# Population neutral of the smile: a neutral mouth is ~1.0 inter-ocular distance wide with its corners level
# with the upper lip's inner edge; a broad smile widens it by ~0.2 and lifts the corners by ~0.1 above that edge.
# (The upper lip, not the lips' centre line: a dropping jaw moves the lower lip, not the corners' pull.)
SMILE_WIDTH_NEUTRAL, SMILE_WIDTH_FULL = 1.02, 0.20
SMILE_LIFT_NEUTRAL, SMILE_LIFT_FULL = 0.0, 0.10
LIPS_APART = 0.06  # inner-lip gap (inter-ocular distances) from which the lips are apart
LIPS_WIDE = 0.35  # ... and wide open
BLINK_CLOSED = 0.6  # an eye is shut when its aspect ratio falls below this share of the clip's median (open) one
BLINK_OPEN = 0.85  # ... and open again above this share
BLINK_LONGEST_S = 1.0  # a longer closure is the eyes held shut, not a blink
JITTER_MADS = 3.0  # AU4 starts this many (scaled) median absolute deviations below the neutral ...
BROW_JITTER_MIN = 0.02  # ... and never closer to it than this (inter-ocular distances)

NAMES = {
    "AU12": "lip corner puller (smile)",
    "AU25": "lips part",
    "AU26": "jaw drop",
    "AU1_2": "brow raiser (inner and outer)",
    "AU4": "brow lowerer",
    "AU45": "blink (eye closure)",
}

# A generic 3-D face (millimetre-like units, y up; the usual six-point face with the nose and inner eye corners
# added at their average depths): nose bridge, nose tip, nostrils, subnasale, eye corners. No chin or lip points:
# a dropping jaw would read as a nodding head.
_MODEL = np.array(
    [(0.0, 170.0, -95.0), (0.0, 0.0, 0.0), (-55.0, -40.0, -70.0), (55.0, -40.0, -70.0), (0.0, -50.0, -45.0)]
    + [(-225.0, 170.0, -135.0), (-75.0, 170.0, -110.0), (75.0, 170.0, -110.0), (225.0, 170.0, -135.0)],
    dtype=np.float64,
)
_MODEL_POINTS = [27, 30, 31, 35, 33, 36, 39, 42, 45]
# The classic six-point generic face (nose tip, chin, outer eye corners, mouth corners): its chin and mouth give the
# depth that reads how far a head is turned, but they move with speech, so it measures the clip's median pose only;
# the nine rigid points above measure how the pose moves.
_TURN_MODEL = np.array(
    [(0.0, 0.0, 0.0), (0.0, -330.0, -65.0), (-225.0, 170.0, -135.0), (225.0, 170.0, -135.0)]
    + [(-150.0, -150.0, -125.0), (150.0, -150.0, -125.0)],
    dtype=np.float64,
)
_TURN_POINTS = [30, 8, 36, 45, 48, 54]


@dataclass
class FrameGeometry:
    """One face's measures in inter-ocular distances."""

    mouth_gap: float
    smile_width: float
    smile_lift: float
    jaw: float
    brow_height: float
    inner_brow_gap: float
    eye_aspect: float


def geometry(points: np.ndarray) -> FrameGeometry:
    p = points.astype(np.float64)
    right_eye, left_eye = p[36:42].mean(0), p[42:48].mean(0)
    axis = left_eye - right_eye
    iod = float(np.hypot(*axis)) or 1.0
    # Upright: rotate about the eyes' midpoint so the eye line is horizontal, and scale to inter-ocular units.
    c, s = axis / iod
    q = (p - (right_eye + left_eye) / 2) @ np.array([[c, -s], [s, c]]) / iod

    def dist(a: int, b: int) -> float:
        return float(np.hypot(*(q[a] - q[b])))

    ear = [
        (dist(e + 1, e + 5) + dist(e + 2, e + 4)) / (2 * max(dist(e, e + 3), 1e-6))
        for e in (36, 42)  # eye aspect ratio of each eye (p2-p6, p3-p5 over p1-p4)
    ]
    return FrameGeometry(
        mouth_gap=float(np.mean([dist(61, 67), dist(62, 66), dist(63, 65)])),
        smile_width=dist(48, 54),
        smile_lift=float(q[62, 1] - (q[48, 1] + q[54, 1]) / 2),  # y grows downwards: corners above = positive
        jaw=float(q[8, 1]),
        brow_height=float(-q[17:27, 1].mean()),
        inner_brow_gap=dist(21, 22),
        eye_aspect=float(np.mean(ear)),
    )


def _clip01(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def _unit(code: str, intensity: list[float | None]) -> ActionUnit:
    values = np.array([v for v in intensity if v is not None], dtype=np.float64)
    return ActionUnit(
        au=code,
        name=NAMES[code],
        active_ratio=round(float((values >= PRESENT).mean()), 4) if values.size else 0.0,
        peak=round(float(values.max()), 3) if values.size else 0.0,
        series=[None if v is None else round(float(v), 3) for v in intensity],
    )


def _below_neutral(values: np.ndarray, full: float) -> np.ndarray:
    """How far each value lies below the clip's median, past its jitter, with `full` as 1."""
    neutral = np.median(values)
    jitter = max(BROW_JITTER_MIN, JITTER_MADS * 1.4826 * float(np.median(np.abs(values - neutral))))
    return (neutral - jitter - values) / full


def blinks(eye_aspect: np.ndarray, times: np.ndarray | None = None) -> int:
    """Closures: the eye aspect ratio falls below BLINK_CLOSED of the clip's median and rises above BLINK_OPEN of
    it again within BLINK_LONGEST_S (a hysteresis, so jitter around one threshold is not counted twice)."""
    open_eye = max(float(np.median(eye_aspect)), 1e-6)
    times = np.arange(len(eye_aspect)) / 10.0 if times is None else times
    count, shut_at = 0, None
    for ratio, t in zip(eye_aspect / open_eye, times):
        if shut_at is None and ratio < BLINK_CLOSED:
            shut_at = t
        elif shut_at is not None and ratio > BLINK_OPEN:
            count += int(t - shut_at <= BLINK_LONGEST_S)
            shut_at = None
    return count


def action_units(
    geoms: list[FrameGeometry | None], times: list[float] | None = None
) -> tuple[list[ActionUnit], int | None]:
    """The action units over a run of frames (None where no face) taken at `times`, and the number of blinks."""
    seen = [i for i, g in enumerate(geoms) if g is not None]
    if not seen:
        return [], None

    def series(values: np.ndarray) -> list[float | None]:
        out: list[float | None] = [None] * len(geoms)
        for i, v in zip(seen, values):
            out[i] = float(v)
        return out

    col = {f: np.array([getattr(geoms[i], f) for i in seen]) for f in FrameGeometry.__dataclass_fields__}
    smile_score = (
        0.5 * (col["smile_width"] - SMILE_WIDTH_NEUTRAL) / SMILE_WIDTH_FULL
        + 0.5 * (col["smile_lift"] - SMILE_LIFT_NEUTRAL) / SMILE_LIFT_FULL
    )
    own_smile = smile_score - np.percentile(smile_score, 10)
    au12 = np.maximum(_clip01(smile_score), _clip01(own_smile))
    au25 = _clip01((col["mouth_gap"] - LIPS_APART / 2) / (LIPS_WIDE - LIPS_APART / 2))
    au26 = _clip01((col["jaw"] - np.percentile(col["jaw"], 10)) / 0.25)
    au1_2 = _clip01((col["brow_height"] - np.percentile(col["brow_height"], 10)) / 0.12)
    au4 = _clip01((_below_neutral(col["brow_height"], 0.10) + _below_neutral(col["inner_brow_gap"], 0.10)) / 2)
    # 0 at BLINK_OPEN of the open eye, 1 at BLINK_CLOSED: present (PRESENT) from about three-quarters open.
    open_eye = max(float(np.median(col["eye_aspect"])), 1e-6)
    au45 = _clip01((BLINK_OPEN - col["eye_aspect"] / open_eye) / (BLINK_OPEN - BLINK_CLOSED))
    units = [
        _unit("AU12", series(au12)),
        _unit("AU25", series(au25)),
        _unit("AU26", series(au26)),
        _unit("AU1_2", series(au1_2)),
        _unit("AU4", series(au4)),
        _unit("AU45", series(au45)),
    ]
    seen_times = None if times is None else np.array([times[i] for i in seen], dtype=np.float64)
    return units, blinks(col["eye_aspect"], seen_times)


def head_pose(points: np.ndarray, width: int, height: int, rigid: bool = True) -> tuple[float, float] | None:
    """(yaw, pitch) in degrees; yaw 0 faces the camera, pitch 0 is level. `rigid`: from the nine points speech does
    not move (for the pose's movement), else from the classic six-point face (for how far the head is turned)."""
    import cv2

    model, chosen = (_MODEL, _MODEL_POINTS) if rigid else (_TURN_MODEL, _TURN_POINTS)
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    image = points[chosen].astype(np.float64)
    ok, rvec, _ = cv2.solvePnP(model, image, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    pitch, yaw, _ = cv2.RQDecomp3x3(rotation)[0]
    # The model's y points up and the image's down: a level face decomposes to a pitch near +-180.
    pitch = (pitch + 180.0) % 360.0 - 180.0
    pitch = pitch - 180.0 if pitch > 90 else pitch + 180.0 if pitch < -90 else pitch
    return float(yaw), float(pitch)
