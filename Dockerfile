# The engine (worker) image: Prefect, the client layer, ffmpeg and decord. vLLM runs in its own images.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY flows flows
COPY annotators annotators
COPY schemas schemas
COPY data/__init__.py data/synth_clips.py data/
COPY data/configs data/configs
RUN pip install --no-cache-dir .
