"""What the picture shows: faces and their landmarks, facial action units, head pose, expressions, and movement.

The clip is decoded anew for this, denser than the 1 frame/s the model roles see: DENSE_FPS frames a second (at
most MAX_FRAMES, spread evenly over longer clips), scaled to MAX_SIDE, so the mouth track can be compared with the
voice (annotators/signals/active_speaker.py). Faces and landmarks: annotators/signals/face_landmarks.py (dlib);
action units and head pose: annotators/signals/action_units.py; expressions: annotators/signals/expressions.py
on up to EXPRESSION_CROPS face crops.

Motion is dense optical flow (Farneback, OpenCV) between consecutive analysed frames at FLOW_WIDTH px: per pair,
the 95th percentile of the flow's speed in frame widths per second (how fast the parts that move move, whatever
their share of the picture: a pointing arm counts, a still background does not dilute it), averaged over the clip
and mapped to 0..1 as 1 - exp(-speed / MOTION_SPEED). So 0.08 is ~0.08 frame widths a second (a head that sways),
0.4 is half a frame width a second (gestures), near 1 is the whole picture sweeping (a pan, a cut).
"""

from __future__ import annotations

import numpy as np

from annotators.signals import action_units as au
from annotators.signals.face_landmarks import Face, description, find_faces
from schemas.signals import VisualSignals

DENSE_FPS = 8.0
MAX_FRAMES = 80
MAX_SIDE = 640
FLOW_WIDTH = 160
MOTION_SPEED = 1.0  # frame widths per second at which motion reads 1 - 1/e (0.63)
MAX_PAIR_SPEED = 3.0  # a cut is one big move, not an unbounded one
EXPRESSION_CROPS = 8


def decode_dense(video: str) -> tuple[list[np.ndarray], list[float]]:
    """Frames (BGR uint8, longer side <= MAX_SIDE) at DENSE_FPS, at most MAX_FRAMES, and their times (s).
    Runs in a worker process: decord may abort on corrupt input."""
    import decord

    probe = decord.VideoReader(video, ctx=decord.cpu(0), num_threads=1)
    total, fps = len(probe), probe.get_avg_fps() or 25.0
    height, width = probe[0].shape[:2] if total else (0, 0)
    del probe
    if total == 0:
        raise ValueError("no decodable frames")
    scale = min(1.0, MAX_SIDE / max(width, height))
    size = {"width": max(2, round(width * scale / 2) * 2), "height": max(2, round(height * scale / 2) * 2)}
    reader = decord.VideoReader(video, ctx=decord.cpu(0), num_threads=1, **(size if scale < 1 else {}))
    count = max(1, min(MAX_FRAMES, round(total / fps * DENSE_FPS)))
    indices = np.clip(((np.arange(count) + 0.5) * total / count).astype(int), 0, total - 1)
    rgb = reader.get_batch(list(indices)).asnumpy()
    return [np.ascontiguousarray(f[..., ::-1]) for f in rgb], [round(float(i) / fps, 3) for i in indices]


def motion(frames: list[np.ndarray], times: list[float]) -> float:
    import cv2

    if len(frames) < 2:
        return 0.0
    small = []
    for f in frames:
        gray = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.ndim == 3 else f
        small.append(cv2.resize(gray, (FLOW_WIDTH, max(2, round(gray.shape[0] * FLOW_WIDTH / gray.shape[1])))))
    speeds = []
    for (a, ta), (b, tb) in zip(zip(small[:-1], times[:-1]), zip(small[1:], times[1:])):
        if a.shape != b.shape:
            continue
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        speed = np.percentile(np.hypot(flow[..., 0], flow[..., 1]), 95) / FLOW_WIDTH / max(tb - ta, 1e-3)
        speeds.append(min(float(speed), MAX_PAIR_SPEED))
    return float(1 - np.exp(-np.mean(speeds) / MOTION_SPEED)) if speeds else 0.0


def face_crops(frames: list[np.ndarray], faces: list[Face | None], count: int = EXPRESSION_CROPS) -> list[np.ndarray]:
    """Up to `count` face crops (BGR), evenly spaced over the frames that have a face; the box widened by 15%."""
    found = [i for i, f in enumerate(faces) if f is not None and f.detector != "tracked"] or [
        i for i, f in enumerate(faces) if f is not None
    ]
    picks = (
        [found[i] for i in np.linspace(0, len(found) - 1, min(count, len(found))).round().astype(int)] if found else []
    )
    crops = []
    for i in dict.fromkeys(picks):
        left, top, right, bottom = faces[i].box
        pad_x, pad_y = int(0.15 * (right - left)), int(0.15 * (bottom - top))
        h, w = frames[i].shape[:2]
        crop = frames[i][max(0, top - pad_y) : min(h, bottom + pad_y), max(0, left - pad_x) : min(w, right + pad_x)]
        if crop.size:
            crops.append(np.ascontiguousarray(crop))
    return crops


def head_movement(poses: np.ndarray) -> float | None:
    """How much the head pose varies: the larger of yaw's and pitch's interquartile range, after a running median
    over 5 frames (~0.5 s), so that the landmark fit's frame-to-frame jitter is not read as a moving head."""
    from scipy.ndimage import median_filter

    if not len(poses):
        return None
    smooth = median_filter(poses, size=(min(5, len(poses)), 1), mode="nearest")
    return round(float(np.max(np.percentile(smooth, 75, axis=0) - np.percentile(smooth, 25, axis=0))), 1)


def measure_images(frames: list[np.ndarray], times: list[float]) -> VisualSignals:
    """Every visual measurement of a run of frames (BGR uint8) taken at `times`."""
    from annotators.signals.expressions import ExpressionModelUnavailable, expression_distribution

    if not frames:
        return VisualSignals(frames=0, face_ratio=0.0, smile_ratio=0.0, motion=0.0, brightness=0.0)
    faces = find_faces(frames)
    geoms = [au.geometry(f.points) if f is not None else None for f in faces]
    units, blinks = au.action_units(geoms, times)
    height, width = frames[0].shape[:2]
    poses = [au.head_pose(f.points, width, height) if f is not None else None for f in faces]
    poses = np.array([p for p in poses if p is not None])
    turns = [au.head_pose(f.points, width, height, rigid=False) if f is not None else None for f in faces]
    turns = np.array([p for p in turns if p is not None])
    found = sum(f is not None for f in faces)
    smile = next((u.active_ratio for u in units if u.au == "AU12"), 0.0)
    try:
        expressions = expression_distribution(face_crops(frames, faces)) if found else None
    except ExpressionModelUnavailable as exc:  # only this field is lost; the reason (what to run) stays in it
        expressions = (None, f"not run: {exc}")
    luma = [float(f.mean()) / 255.0 for f in frames]  # BGR mean: close enough to luma for "how dark"
    return VisualSignals(
        frames=len(frames),
        face_ratio=round(found / len(frames), 4),
        smile_ratio=smile,
        motion=round(motion(frames, times), 4),
        brightness=round(float(np.mean(luma)), 4),
        detector=description(),
        frame_times=[round(t, 3) for t in times],
        mouth_opening=[None if g is None else round(g.mouth_gap, 4) for g in geoms],
        action_units=units,
        face_size=(
            round(float(np.median([(f.box[3] - f.box[1]) / height for f in faces if f is not None])), 4)
            if found
            else None
        ),
        blinks=blinks,
        head_yaw_deg=round(float(np.median(turns[:, 0])), 1) if len(turns) else None,
        head_pitch_deg=round(float(np.median(turns[:, 1])), 1) if len(turns) else None,
        head_movement_deg=head_movement(poses),
        expressions=expressions[0] if expressions else None,
        expression_model=expressions[1] if expressions else None,
    )


def measure_video(video: str) -> VisualSignals:
    """Runs in a worker process: decodes the clip densely and measures it."""
    frames, times = decode_dense(video)
    return measure_images(frames, times)


def measure_frames(paths: list[str], times: list[float] | None = None) -> VisualSignals:
    """The same measurements of already sampled frames (JPEG paths; 1 s apart unless `times` says otherwise).
    Runs in a worker process."""
    import cv2

    pairs = [(cv2.imread(p), t) for p, t in zip(paths, times or [float(i) for i in range(len(paths))])]
    pairs = [(f, t) for f, t in pairs if f is not None]
    return measure_images([f for f, _ in pairs], [t for _, t in pairs])
