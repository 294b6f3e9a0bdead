"""Set-up time only: fer's FER2013 Keras model -> ONNX, once, for annotators/signals/expressions.py's OpenCV dnn.

    .venv/bin/python -m annotators.signals.expressions_convert      (scripts/setup runs it; idempotent)

Keras 3 on its torch backend reads the legacy Keras-2 hdf5 as it is (the one reader of the original weights), and
torch.onnx's exporter (dynamo, with onnxscript) writes the model with a dynamic batch. keras's own
model.export(format="onnx") was not used: on torch it either fixes the batch at 1 or, given a batch of None, falls
back to the TorchScript exporter, which cannot export this model's shape-dependent sizes (keras 3.15.1, torch
2.13.0). Before the file is put in place, OpenCV's dnn runs it and must agree with Keras on a fixed batch.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from annotators.signals.expressions import CONVERT_COMMAND, INPUT_SIDE, ExpressionModelUnavailable, onnx_path, weights

TOLERANCE = 1e-4  # largest difference in any class probability between Keras and the converted model


def load_keras_model():
    """fer's model as Keras 3 reads it, on the torch backend (only torch is installed: no TensorFlow, no JAX)."""
    if os.environ.setdefault("KERAS_BACKEND", "torch") != "torch":
        raise ExpressionModelUnavailable(
            f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}: the conversion runs on Keras's torch backend; "
            f"unset KERAS_BACKEND or set it to torch, then run {CONVERT_COMMAND}"
        )
    try:
        import keras
    except ImportError as exc:
        raise ExpressionModelUnavailable(
            f"the conversion needs keras and torch ({exc}): pip install -e '.[expressions-convert]'"
        ) from exc
    if keras.backend.backend() != "torch":
        raise ExpressionModelUnavailable(f"Keras was already imported with the {keras.backend.backend()} backend.")
    model = keras.saving.load_model(weights()[0], compile=False)
    if tuple(model.input_shape) != (None, INPUT_SIDE, INPUT_SIDE, 1):
        raise ExpressionModelUnavailable(f"fer's model takes {model.input_shape}, not ({INPUT_SIDE}, {INPUT_SIDE}, 1)")
    return model


def export(model, path: Path) -> None:
    import torch

    class Inference(torch.nn.Module):  # a plain forward(x) for torch.export; Keras's takes *args
        def __init__(self, wrapped):
            super().__init__()
            self.wrapped = wrapped

        def forward(self, faces):
            return self.wrapped(faces, training=False)

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notes: not needed
    sample = torch.zeros((2, INPUT_SIDE, INPUT_SIDE, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            Inference(model).eval(),
            (sample,),
            dynamo=True,
            input_names=["faces"],
            output_names=["probabilities"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
        program.optimize()
        program.save(str(path))


def check(model, path: Path) -> float:
    """Largest difference between Keras and OpenCV's dnn on the converted file, over a batch in the model's range."""
    import cv2

    faces = np.random.default_rng(0).uniform(-1, 1, (5, INPUT_SIDE, INPUT_SIDE, 1)).astype(np.float32)
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(faces)
    return float(np.abs(net.forward() - model.predict(faces, verbose=0)).max())


def convert() -> Path:
    """The ONNX file for the installed weights: made (and checked) if missing, else left as it is."""
    target = onnx_path()
    if target.is_file():
        return target
    model = load_keras_model()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")  # a killed run leaves no file that looks finished
    try:
        export(model, partial)
        diff = check(model, partial)
        if diff > TOLERANCE:
            raise ExpressionModelUnavailable(f"the ONNX model differs from Keras by {diff:.2g} (> {TOLERANCE})")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def main() -> int:
    try:
        print(convert())
    except ExpressionModelUnavailable as exc:
        print(f"expressions_convert: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
