"""A Prefect API server for the benchmark's flow runs, as a deployment has (docker-compose.yml).

Without one, every flow run starts Prefect's ephemeral API inside its own process: a fixed cost of
several seconds per run (measured apart, see main.local_mode_startup) that would otherwise be
charged to every figure as if it were per-clip work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


class PrefectServer:
    def __init__(self, home: Path, port: int) -> None:
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        prefect = str(Path(sys.executable).with_name("prefect"))
        self.proc = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=(home / "server.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.api = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(1)
        self.stop()
        raise RuntimeError("Prefect server did not start: " + (home / "server.log").read_text()[-2000:])

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)
