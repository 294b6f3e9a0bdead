"""Start and stop vLLM's OpenAI-compatible server as a child process.

vLLM runs in its own Python environment (`vllm_python`): its pins (torch, fastapi) conflict with
Prefect's, and a separate process is how it is deployed anyway (one container per model role).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from runtime.lifecycle import warden_command
from schemas.config import LocalServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_vllm_python() -> str:
    """$EMER_VLLM_PYTHON, else the project's .venv-vllm, else this interpreter."""
    if env := os.environ.get("EMER_VLLM_PYTHON"):
        return env
    venv = PROJECT_ROOT / ".venv-vllm" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def build_tiny_model(kind: str, out_dir: Path, python: str) -> Path:
    """Build a tiny random model with the vLLM environment's torch/transformers (the engine has neither)."""
    code = (
        f"from pathlib import Path; from annotators.tiny_models import build_{kind}_model as b; "
        f"b(Path({str(out_dir)!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building tiny {kind} model failed:\n{done.stderr[-3000:]}")
    return out_dir


class VLLMServer:
    def __init__(self, spec: LocalServer, state_dir: Path, python: str | None = None) -> None:
        self.spec, self.python = spec, python or default_vllm_python()
        self.state_dir = state_dir
        self.log_path = state_dir / "servers" / f"{spec.name}.log"
        self.base_url = f"http://127.0.0.1:{spec.port}/v1"
        self._proc: subprocess.Popen | None = None

    def model_path(self) -> str:
        if self.spec.model.startswith("tiny:"):
            kind = self.spec.model.removeprefix("tiny:")
            return str(build_tiny_model(kind, self.state_dir / "models" / f"tiny-{kind}", self.python))
        return self.spec.model

    def command(self, model: str) -> list[str]:
        # -P: the working directory stays off sys.path, so a checkout's stale *.egg-info there cannot
        # shadow the installed plugin's entry points (vllm.general_plugins).
        cmd = [
            self.python,
            "-P",
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.spec.port),
        ]
        if self.spec.served_model_name:
            cmd += ["--served-model-name", self.spec.served_model_name]
        return cmd + list(self.spec.extra_args)

    def start(self) -> VLLMServer:
        if self.healthy():
            raise RuntimeError(
                f"port {self.spec.port} already serves something; refusing to start {self.spec.name} over it"
            )
        cmd = self.command(self.model_path())
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # An inherited VLLM_API_KEY (meant for remote servers) would make this loopback server demand a
        # key its roles were not configured to send (every request a 401): a server the engine starts
        # requires one only when its own spec's env sets it.
        env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"} | self.spec.env
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            # A session of its own: stop() signals the whole group (API server, engine core, workers).
            # Under a warden that stops the group if this process dies without stop() (a SIGKILL).
            self._proc = subprocess.Popen(
                warden_command(cmd), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + self.spec.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"vLLM server {self.spec.name} exited with {self._proc.returncode}; log tail:\n{self.log_tail()}"
                )
            if self.healthy():
                return self
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(
            f"vLLM server {self.spec.name} not healthy after {self.spec.startup_timeout_s} s; "
            f"log tail:\n{self.log_tail()}"
        )

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.spec.port}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        if self._proc is None:
            return
        _signal_group(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(self._proc.pid, signal.SIGKILL)  # whatever outlived the leader: engine core, workers
        self._proc.wait()
        self._proc = None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the group is already gone
