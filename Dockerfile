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
COPY data/__init__.py data/synth_clips.py data/
COPY data/configs data/configs
COPY data/lexicon data/lexicon
RUN pip install --no-cache-dir .
