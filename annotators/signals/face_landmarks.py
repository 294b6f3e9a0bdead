"""Faces and their 68 landmarks in a run of frames, with dlib's detectors and shape predictor.

Why dlib (dlib-bin wheels + face-recognition-models 0.3.0, whose data files are dlib's trained models): it is the
one choice that ships its weights on the registry and installs into the engine's own environment. mediapipe 0.10.21
(the last release with the models in the wheel) pins numpy<2 and protobuf<5, which the engine's environment cannot
take; facenet-pytorch's MTCNN needs torchvision (no wheel that imports beside this torch) and gives 5 landmarks only.
The 68-point predictor (iBUG 300-W layout) carries the geometry the action units need (lip corners and gap, brows,
eyelids, jaw) and, with a generic 3-D face, the head pose.

Detection: the HOG detector first (14 ms on a 640x360 frame), on a contrast-normalised grey frame (gamma-lifted
when dark, then CLAHE) so that dark shots keep their edges; it finds frontal and moderately turned faces. Where it
finds none, a few of those frames are searched harder: HOG on the frame upsampled twice (faces down to ~40 px),
then, if no face was found anywhere yet, the CNN (MMOD) detector on the whole frame (turned, dark, partly hidden
faces; ~0.8 s of CPU at 480 px, so twice per clip at most). The other misses get the CNN on a window around the
nearest face found (~0.1 s). Detection runs on key frames (every KEY_EVERY-th analysed frame); the frames between
take the box of the nearest key frame that has one (a face moves little in a quarter of a second) and get their own
landmarks from the predictor (~1 ms a frame; a small face is enlarged first).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass

import numpy as np

KEY_EVERY = 2  # detect on every 2nd analysed frame
SEARCH_FRAMES = 2  # frames HOG missed that are searched whole (HOG upsampled, then the CNN: ~0.8 s each)
CNN_WINDOWS = 16  # at most this many CNN looks around a face found elsewhere in the clip (~0.1 s each)
CNN_SIDE = 480  # the whole-frame CNN runs on the frame scaled to this longer side
CNN_MIN_CONFIDENCE = 0.3
LANDMARK_SIDE = 120  # faces smaller than this (px) are enlarged to it before the landmarks are fitted
DARK_LUMA = 0.35  # below this mean luma a frame is brightened (gamma) before CLAHE


@dataclass
class Face:
    box: tuple[int, int, int, int]  # left, top, right, bottom in the frame's pixels
    points: np.ndarray  # (68, 2) float32, the iBUG 300-W landmarks
    detector: str  # "hog", "hog-upsampled", "cnn" or "tracked" (the box of a neighbouring key frame)


def _models_dir() -> str:
    # face_recognition_models' __init__ imports pkg_resources (gone from recent setuptools): find its files without
    # importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed; run scripts/setup")
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


@functools.cache
def _models():
    """(HOG detector, CNN detector, 68-point predictor), loaded once per (worker) process."""
    import dlib

    folder = _models_dir()
    return (
        dlib.get_frontal_face_detector(),
        dlib.cnn_face_detection_model_v1(os.path.join(folder, "mmod_human_face_detector.dat")),
        dlib.shape_predictor(os.path.join(folder, "shape_predictor_68_face_landmarks.dat")),
    )


def description() -> str:
    import dlib

    return (
        f"dlib {dlib.__version__}: HOG face detector, MMOD CNN face detector and the 68-point shape predictor "
        "(face-recognition-models 0.3.0)"
    )


@functools.cache
def _clahe():
    import cv2

    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))


def normalised_gray(bgr: np.ndarray) -> np.ndarray:
    """Grey, brightened when dark, local contrast equalised (CLAHE): what the detectors and predictor see."""
    import cv2

    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    mean = float(gray.mean()) / 255.0
    if 0.0 < mean < DARK_LUMA:
        gamma = np.log(0.45) / np.log(max(mean, 1e-3))  # lifts the mean towards 0.45
        table = np.clip(((np.arange(256) / 255.0) ** gamma) * 255.0, 0, 255).astype(np.uint8)
        gray = cv2.LUT(gray, table)
    return _clahe().apply(gray)


def _largest(rects) -> tuple[int, int, int, int] | None:
    if not rects:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    return int(r.left()), int(r.top()), int(r.right()), int(r.bottom())


def _hog(gray: np.ndarray, upsample: int) -> tuple[int, int, int, int] | None:
    hog, _, _ = _models()
    return _largest(list(hog(gray, upsample)))


def _cnn(gray: np.ndarray, near: tuple[int, int, int, int] | None = None) -> tuple[int, int, int, int] | None:
    """The CNN on the whole frame (scaled to CNN_SIDE), or on a window around a face found in another frame (scaled
    so that face is ~100 px: a tenth of the cost)."""
    import cv2

    _, cnn, _ = _models()
    x0 = y0 = 0
    if near is not None:
        left, top, right, bottom = near
        side = max(right - left, bottom - top)
        x0, y0 = max(0, left - side), max(0, top - side)
        gray = gray[y0 : bottom + side, x0 : right + side]
        scale = min(1.0, 100.0 / max(side, 1))
    else:
        scale = min(1.0, CNN_SIDE / max(gray.shape[:2]))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    found = [
        d.rect for d in cnn(np.ascontiguousarray(np.stack([small] * 3, -1)), 0) if d.confidence >= CNN_MIN_CONFIDENCE
    ]
    box = _largest(found)
    if box is None:
        return None
    return tuple(int(round(v / scale)) + off for v, off in zip(box, (x0, y0, x0, y0)))


def _spread(items: list[int], count: int) -> list[int]:
    """At most `count` of `items`, evenly spread."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def landmarks(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The 68 points in the frame's pixels. A small face is enlarged first (to LANDMARK_SIDE px): the predictor,
    trained on large faces, jitters on a 40 px one."""
    import cv2
    import dlib

    _, _, predictor = _models()
    left, top, right, bottom = box
    side = max(right - left, bottom - top, 1)
    if side >= LANDMARK_SIDE:
        shape = predictor(gray, dlib.rectangle(*box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
    x0, y0 = max(0, left - side // 2), max(0, top - side // 2)
    window = gray[y0 : bottom + side // 2, x0 : right + side // 2]
    scale = LANDMARK_SIDE / side
    big = cv2.resize(window, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    scaled = [int(round(v * scale)) for v in (left - x0, top - y0, right - x0, bottom - y0)]
    shape = predictor(big, dlib.rectangle(*scaled))
    return np.array([(p.x / scale + x0, p.y / scale + y0) for p in shape.parts()], dtype=np.float32)


def find_faces(frames: list[np.ndarray]) -> list[Face | None]:
    """The largest face of each frame (BGR or grey uint8), with its landmarks; None where no face is found."""
    grays = [normalised_gray(f) for f in frames]
    keys = list(range(0, len(grays), KEY_EVERY))
    if keys and keys[-1] != len(grays) - 1:
        keys.append(len(grays) - 1)
    boxes: dict[int, tuple[tuple[int, int, int, int], str]] = {}
    misses = []
    for k in keys:
        box = _hog(grays[k], 0)
        if box is not None:
            boxes[k] = (box, "hog")
        else:
            misses.append(k)
    if misses:
        # A first look for a face HOG missed on a few frames: HOG at twice the resolution (small faces), then the
        # CNN on the whole frame (turned, dark faces). Nothing found anywhere by then: no face.
        for k in _spread(misses, SEARCH_FRAMES):
            box, how = _hog(grays[k], 1), "hog-upsampled"
            if box is None and not boxes:
                box, how = _cnn(grays[k]), "cnn"
            if box is not None:
                boxes[k] = (box, how)
        # The rest: the CNN around the nearest face found (a tenth of the cost of a whole frame).
        for k in _spread([k for k in misses if k not in boxes], CNN_WINDOWS):
            if boxes:
                nearest = min(boxes, key=lambda j: abs(j - k))
                if (box := _cnn(grays[k], near=boxes[nearest][0])) is not None:
                    boxes[k] = (box, "cnn")
    faces: list[Face | None] = []
    for i, gray in enumerate(grays):
        near = sorted((abs(k - i), k) for k in boxes if abs(k - i) <= KEY_EVERY)
        if not near:
            faces.append(None)
            continue
        k = near[0][1]
        box, how = boxes[k]
        faces.append(Face(box=box, points=landmarks(gray, box), detector=how if k == i else "tracked"))
    return faces
