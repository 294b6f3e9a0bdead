"""Faces, smiles and motion in sampled frames, with the Haar cascades that ship inside OpenCV.

Haar cascades are old and miss profiles, but they need no download and run in milliseconds on a
CPU; the A/V gate asks only "is there a frontal talking face", which they answer well enough.
"""

from __future__ import annotations

import numpy as np

from schemas.signals import VisualSignals

_cascades: dict[str, object] = {}


def _cascade(name: str):
    import cv2

    if name not in _cascades:
        _cascades[name] = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    return _cascades[name]


def largest_face(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    side = min(gray.shape[:2])
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(max(24, side // 8),) * 2
    )
    if len(faces) == 0:
        return None
    return tuple(int(v) for v in max(faces, key=lambda f: f[2] * f[3]))


def smiles(gray: np.ndarray, face: tuple[int, int, int, int]) -> bool:
    x, y, w, h = face
    mouth = gray[y + h // 2 : y + h, x : x + w]  # a smile is searched only in the lower half of the face
    found = _cascade("haarcascade_smile.xml").detectMultiScale(
        mouth, scaleFactor=1.7, minNeighbors=20, minSize=(w // 5, h // 10)
    )
    return len(found) > 0


def measure_frames(paths: list[str]) -> VisualSignals:
    """Runs in a worker process."""
    import cv2

    grays = [cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in paths]
    grays = [g for g in grays if g is not None]
    if not grays:
        return VisualSignals(frames=0, face_ratio=0.0, smile_ratio=0.0, motion=0.0, brightness=0.0)
    faces = [largest_face(g) for g in grays]
    with_face = [(g, f) for g, f in zip(grays, faces) if f is not None]
    smiling = sum(smiles(g, f) for g, f in with_face)
    small = [cv2.resize(g, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0 for g in grays]
    motion = float(np.mean([np.abs(a - b).mean() for a, b in zip(small[:-1], small[1:])])) if len(small) > 1 else 0.0
    return VisualSignals(
        frames=len(grays),
        face_ratio=round(len(with_face) / len(grays), 4),
        smile_ratio=round(smiling / len(with_face), 4) if with_face else 0.0,
        motion=round(motion, 4),
        brightness=round(float(np.mean([s.mean() for s in small])), 4),
    )
