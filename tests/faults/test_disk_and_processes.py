"""Issue 16, items 1 and 5: a disk that fills during a build, and processes that outlive the run.

Checked against the real faults, not against the engine's code: a tmpfs of a few hundred kilobytes
under the state directory (writes past its size fail with ENOSPC, as on a full disk), the rows a build
writes (compared with an uninterrupted build's), the media cache's files (compared byte for byte with
that build's), and for processes the kernel's own account in /proc (pids with their start times)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data import synth_clips as synth
from flows.build_coarse import build_coarse
from runtime.isolation import IsolatedPool
from schemas.config import MediaConfig
from schemas.errors import UserError
from schemas.manifest import Subtitles
from stages.ingest import probe_clip
from stages.media_prep import MediaPrep
from tests.faults.injection import bounded_filesystem, descendants, kill_tree, survivors

ROOT = Path(__file__).resolve().parents[2]
SIGNALS = ROOT / "data" / "configs" / "cpu-signals.toml"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("disk-corpus")
    synth.talking_clip(root / "disk_1.mp4", "I finally passed the exam, I am so happy!")
    synth.talking_clip(root / "disk_2.mp4", "Why do you always treat me like this?", size="640x360")
    synth.talking_clip(root / "disk_3.mp4", "Please leave me alone, I am tired of it.")
    return root


def config_with_state(path: Path, state_dir: Path) -> Path:
    """The zero-download line-up with its media cache and checkpoint in `state_dir`."""
    path.write_text(f'state_dir = "{state_dir}"\n' + SIGNALS.read_text())
    return path


def dataset(out: Path) -> dict[str, list[dict]]:
    """Every split's rows, by name."""
    splits: dict[str, list[dict]] = {}
    for shard in sorted((out / "data").glob("*.parquet")):
        splits.setdefault(shard.name.split("-")[0], []).extend(pq.read_table(shard).to_pylist())
    return {split: sorted(rows, key=lambda r: r["name"]) for split, rows in splits.items()}


def cache_files(state_dir: Path) -> dict[str, bytes]:
    """The media cache's entries as a reader takes them, by relative path: audio files under their final
    name, and each frames folder's index (frames.json, README's layout) with the frames it lists."""
    media = state_dir / "media"
    entries = [*media.rglob("audio-*.wav"), *media.rglob("frames.json")]
    entries += [
        Path(frame) for index in media.rglob("frames.json") for frame in json.loads(index.read_text())["frames"]
    ]
    # An index names its frames by absolute path: the same entry in another state folder reads the same.
    return {
        str(p.relative_to(media)): p.read_bytes().replace(str(media).encode(), b"<media>")
        for p in entries
        if ".tmp" not in p.name
    }


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("uninterrupted")
    out, state = root / "out", root / "state"
    build_coarse(str(corpus), str(out), str(config_with_state(root / "engine.toml", state)))
    return out, state


def prepared(corpus: Path, state_dir: Path) -> tuple[list[str], str]:
    """One clip's frames and audio, through the media prep the pipeline uses (its own decoder pool)."""
    config = MediaConfig()
    record = probe_clip(corpus / "disk_1.mp4", Subtitles(), None, config.audio_max_seconds, -60)
    pool = IsolatedPool(1)
    try:
        media = asyncio.run(MediaPrep(state_dir / "media", config, pool).prepare(record, with_audio=True))
    finally:
        pool.close()
    return media.frames, media.wav


def test_a_cut_short_file_left_in_the_media_cache_is_prepared_again_not_used(corpus, tmp_path):
    """What an older version left on a full disk: a truncated WAV under its final name, a frame cut off."""
    frames, wav = prepared(corpus, tmp_path)
    whole_wav, whole_frame = Path(wav).read_bytes(), Path(frames[0]).read_bytes()
    Path(wav).write_bytes(whole_wav[: len(whole_wav) // 2])
    Path(frames[0]).unlink()
    again_frames, again_wav = prepared(corpus, tmp_path)
    assert Path(again_wav).read_bytes() == whole_wav
    assert Path(again_frames[0]).read_bytes() == whole_frame


def test_a_disk_that_fills_during_media_prep_stops_the_run_and_the_run_after_freeing_space_is_exact(
    corpus, uninterrupted, tmp_path
):
    reference, reference_state = uninterrupted
    out, state = tmp_path / "out", tmp_path / "state"
    config = config_with_state(tmp_path / "engine.toml", state)
    # Room for the probe's checkpoint and some media, not for all of it (~630 kB for three clips).
    with bounded_filesystem(state, "320k") as disk:
        with pytest.raises(UserError) as stopped:
            build_coarse(str(corpus), str(out), str(config))
        message = str(stopped.value)
        assert "No space left on device" in message and "run the same command again" in message
        assert "\n" not in message  # one line for the user
        assert not (out / "build.json").exists()
        # Whatever entered the cache is whole: byte for byte what the uninterrupted build cached.
        full = cache_files(reference_state)
        partial = cache_files(state)
        assert partial, "the disk filled before any media was cached: the test's tmpfs is too small"
        assert {path: full.get(path) for path in partial} == partial

        disk.resize("64m")  # space freed
        build_coarse(str(corpus), str(out), str(config))
        assert dataset(out) == dataset(reference)
        assert cache_files(state) == full


# --- item 5: processes that outlive the run ----------------------------------------------------------


def slow_config(path: Path) -> Path:
    """One clip per batch, one batch at a time: the run lasts long enough to be stopped in the middle."""
    signals = SIGNALS.read_text().replace("batch_size = 16", "batch_size = 1").replace("task_workers = 2", "")
    path.write_text("task_workers = 1\n" + signals)
    return path


def start_build(corpus: Path, out: Path, config: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as stderr:  # a file, not a pipe: a pipe no one reads would stall the run
        return subprocess.Popen(
            # The command line as `emer-coarse` runs it (flows/cli.py installs the run's lifecycle first).
            [sys.executable, "-m", "flows.cli", "build", str(corpus), "--out", str(out), "--config", str(config)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def mid_run(proc: subprocess.Popen, timeout: float = 120.0) -> set:
    """Every process the run started, watched until its Prefect server and decoder workers are all up."""
    seen: set = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= descendants(proc.pid)
        commands = [p.command for p in seen]
        if any("uvicorn" in c for c in commands) and sum("multiprocessing" in c for c in commands) >= 2:
            return seen
        time.sleep(0.1)
    kill_tree(seen)
    pytest.fail(f"the run ended (rc {proc.poll()}) before its servers and decoders were all seen: {commands}")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.cli_build  # a whole CLI build in its own process
def test_stopping_only_the_main_process_leaves_no_process_it_started(corpus, tmp_path, how):
    proc = start_build(corpus, tmp_path / "out", slow_config(tmp_path / "slow.toml"), tmp_path / "stderr.log")
    started = mid_run(proc)
    try:
        os.kill(proc.pid, how)  # the main process only, as `kill PID` or an OOM killer does
        rc = proc.wait(timeout=60)
        left = survivors(started, within=15)
        assert not left, f"alive after the run was stopped: {sorted((p.pid, p.command) for p in left)}"
        assert rc != 0
    finally:
        kill_tree(started)
        proc.kill()


# A stand-in for vLLM's OpenAI server, as VLLMServer runs it (`PYTHON -P -m vllm... --port N`): an engine
# core child, like vLLM's, and /health answered on the port.
FAKE_VLLM = """#!{python}
import http.server, subprocess, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
subprocess.Popen(["sleep", "300"])  # the engine core
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""

# A run that starts a server the way local_servers does, then is killed before it can stop it.
RUN_WITH_SERVER = """
import sys, time
from pathlib import Path
from annotators.server import VLLMServer
from schemas.config import LocalServer
spec = LocalServer(name="fake", model="m", port=int(sys.argv[1]), startup_timeout_s=60)
VLLMServer(spec, Path(sys.argv[2]), python=sys.argv[3]).start()
print("up", flush=True)
time.sleep(300)
"""


def test_a_vllm_server_the_run_started_dies_with_it_when_the_run_is_killed(tmp_path):
    fake = tmp_path / "fake-vllm-python"
    fake.write_text(FAKE_VLLM.format(python=sys.executable))
    fake.chmod(0o755)
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = subprocess.Popen(
        [sys.executable, "-c", RUN_WITH_SERVER, str(port), str(tmp_path), str(fake)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert run.stdout.readline().strip() == "up"
    started = descendants(run.pid)
    try:
        assert any("sleep 300" in p.command for p in started)  # the server and its engine core are up
        run.kill()  # no stop(): the run is gone at once
        run.wait()
        left = survivors(started, within=10)
        assert not left, f"alive after the run was killed: {sorted((p.pid, p.command) for p in left)}"
    finally:
        kill_tree(started)
