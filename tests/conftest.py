"""Shared fixtures: generated corpora (ffmpeg, espeak-ng) and real vLLM servers with tiny random models.

The servers are started once per test session: each takes about a minute to start on the CPU.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flows.prefect_defaults import apply_prefect_defaults  # noqa: E402

# Prefect's local mode with a database of the test session's own, not the user's ~/.prefect.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))
apply_prefect_defaults()

from annotators.server import VLLMServer, default_vllm_python  # noqa: E402
from data import synth_clips as synth  # noqa: E402
from schemas.config import EngineConfig  # noqa: E402

# The demo's server settings are the tests' too (data/configs/cpu-tiny.toml): one place to change them.
DEMO_SERVERS = {
    spec.name: spec for spec in EngineConfig.from_file(ROOT / "data" / "configs" / "cpu-tiny.toml").servers
}


# Tests that need a heavy real service are marked by the fixtures they use, so `scripts/test --fast`
# (`-m "not vllm and not label_studio and not prefect_server and not cli_build"`) leaves out exactly those.
SERVICE_FIXTURES = {
    "vllm": {"servers", "vllm_parsed"},
    "label_studio": {"label_studio"},
    "prefect_server": {"prefect_server", "prefect_server_on_postgres"},
    "cli_build": {"rebuild"},
    "llamafactory": {"llamafactory_python"},
}


def pytest_configure(config):
    # The test session's own builds start Prefect servers and decoders in this process: if pytest itself
    # is killed (CI's timeout), they go with it (runtime/lifecycle.py).
    from runtime import lifecycle

    lifecycle.install()


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in SERVICE_FIXTURES.items():
            if used & fixtures:
                item.add_marker(marker)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def servers(tmp_path_factory) -> dict[str, VLLMServer]:
    """A tiny text model and a tiny audio model, each behind vLLM's OpenAI server."""
    python = default_vllm_python()
    state = tmp_path_factory.mktemp("vllm")
    specs = {name: spec.model_copy(update={"port": free_port()}) for name, spec in DEMO_SERVERS.items()}
    started = {k: VLLMServer(spec, state, python) for k, spec in specs.items()}
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda s: s.start(), started.values()))
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="session")
def good_clip(tmp_path_factory) -> Path:
    return synth.talking_clip(
        tmp_path_factory.mktemp("clips") / "sample_00000001.mp4", "I am so happy, I finally passed the exam!"
    )


@pytest.fixture(scope="session")
def mer_corpus(tmp_path_factory, good_clip) -> Path:
    """A MER2025-style corpus: good clips, every bad kind, and a subtitle row without a clip."""
    root = tmp_path_factory.mktemp("corpus")
    video = root / "video"
    video.mkdir()
    synth.talking_clip(video / "sample_00000001.mp4", "I am so happy, I finally passed the exam!")
    synth.talking_clip(video / "sample_00000002.mp4", "Why do you always treat me like this?", size="640x360")
    synth.talking_clip(video / "samplenew_00004251.mp4", "What is this? I never expected it.")
    synth.silent_clip(video / "sample_00000010.mp4")
    synth.silent_clip(video / "sample_00000011.mp4", audio=False)
    synth.empty_file(video / "sample_00000012.mp4")
    synth.not_a_video(video / "sample_00000013.mp4")
    synth.truncated_copy(good_clip, video / "sample_00000014.mp4")
    synth.corrupted_copy(good_clip, video / "sample_00000015.mp4")
    synth.write_subtitles(
        root / "subtitle_chieng.csv",
        [
            ("sample_00000001", "我终于通过考试了，太开心了！", "I am so happy, I finally passed the exam!"),
            ("sample_00000002", "你为什么总是这样对我？", ""),  # English missing: translated zh -> en
            ("samplenew_00004251", "", "What is this? I never expected it."),
            ("sample_00000010", "", ""),
            ("sample_00000099", "这个视频丢失了。", "This clip is missing."),
        ],
    )
    return root


def served_requests(server: VLLMServer) -> int:
    """Requests the server has finished, from its Prometheus metrics: the ground truth for counting."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{server.spec.port}/metrics", timeout=10).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("vllm:request_success_total")
        )
    )


def write_flow_config(path: Path, servers: dict[str, VLLMServer], **top) -> Path:
    """An engine config that uses the session's servers (already running: no [[servers]] to start)."""
    text_url, audio_url = servers["text"].base_url, servers["audio"].base_url
    lines = [
        f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
        for k, v in {"batch_size": 4, "task_workers": 2, **top}.items()
    ]
    lines += ["[media]", "max_frames = 4", "frame_max_side = 160"]
    roles = {
        "audio_clue": (audio_url, "tiny-audio", "input_audio"),
        "visual_clue": (text_url, "tiny-text", "none"),
        "disambiguation": (text_url, "tiny-text", "none"),
        "translation": (text_url, "tiny-text", "none"),
        "labels": (text_url, "tiny-text", "none"),
    }
    for role, (url, model, media) in roles.items():
        lines += [
            f"[roles.{role}]",
            f'prompt = "{role}"',
            f'media = "{media}"',
            "sampling = { max_tokens = 1024 }",
            f'endpoints = [{{ base_url = "{url}", model = "{model}", max_in_flight = 16 }}]',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session", autouse=True)
def prefect_local_server():
    """Stop Prefect's ephemeral API server while pytest's streams are still open (its own atexit
    hook logs to a stream pytest has closed by then, and prints a logging traceback)."""
    yield
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    # Logs and events still queued for the API go first: sent after the server stopped, each retries
    # for over a minute ("Error logging to API: All connection attempts failed") before pytest can exit.
    APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()
