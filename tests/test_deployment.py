"""The build-coarse deployment as operators run it: a real Prefect server on loopback (SQLite), a
process worker, `prefect deploy` from prefect.yaml and `prefect deployment run build-coarse/nightly`.
Scheduled runs are incremental: a grown corpus costs model calls for its new clips only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from data import synth_clips as synth
from tests.conftest import ROOT, free_port, served_requests, write_flow_config

PREFECT = str(Path(sys.executable).with_name("prefect"))


def start_postgres(root: Path) -> tuple[str, callable]:
    """A private PostgreSQL cluster from Debian's packages (what the compose stack runs), on loopback."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    assert bins, "PostgreSQL is not installed (scripts/setup installs Debian's postgresql)"
    pg, port = bins[-1], free_port()
    root.mkdir(parents=True, exist_ok=True)
    shutil.chown(root, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
    subprocess.run(
        [*as_postgres, str(pg / "initdb"), "-D", str(root / "db"), "--auth=trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [
            *as_postgres,
            str(pg / "pg_ctl"),
            "-D",
            str(root / "db"),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "prefect"],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            [*as_postgres, str(pg / "pg_ctl"), "-D", str(root / "db"), "-m", "fast", "stop"], capture_output=True
        )

    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect", stop


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    yield from _prefect_server(tmp_path_factory.mktemp("prefect-server"), {})


@pytest.fixture(scope="module")
def prefect_server_on_postgres(tmp_path_factory):
    url, stop = start_postgres(Path(tempfile.mkdtemp(prefix="pg-")))
    try:
        yield from _prefect_server(tmp_path_factory.mktemp("prefect-pg"), {"PREFECT_API_DATABASE_CONNECTION_URL": url})
    finally:
        stop()


def _prefect_server(home: Path, settings: dict):
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **settings}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=(home / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        server.kill()
        pytest.fail("Prefect server did not start:\n" + (home / "server.log").read_text()[-3000:])
    client_env = {**env, "PREFECT_API_URL": api}
    worker = None
    try:
        subprocess.run(
            [PREFECT, "work-pool", "create", "emer-pool", "--type", "process"],
            env=client_env,
            check=True,
            capture_output=True,
        )
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "emer-pool"],
            env=client_env,
            cwd=ROOT,
            stdout=(home / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        yield client_env
    finally:
        for proc in (worker, server):
            if proc is not None:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=60)


def deploy(server_env: dict, defaults: Path) -> dict:
    """`prefect deploy --all` as an operator runs it, with the deployment's defaults from the environment."""
    env = {
        **server_env,
        "EMER_PROJECT_DIR": str(ROOT),
        "EMER_CORPUS": str(ROOT / "data" / "sample"),
        "EMER_OUT": str(defaults / "out"),
        "EMER_CONFIG": str(ROOT / "data" / "configs" / "cpu-tiny.toml"),
    }
    done = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--all"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return server_env


@pytest.fixture(scope="module")
def deployed(prefect_server, tmp_path_factory):
    return deploy(prefect_server, tmp_path_factory.mktemp("defaults"))


def run_deployment(env: dict, **params) -> None:
    cmd = [PREFECT, "deployment", "run", "build-coarse/nightly", "--watch", "--watch-timeout", "600"]
    for key, value in params.items():
        cmd += ["--param", f"{key}={json.dumps(value)}"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=700)
    assert done.returncode == 0 and "Completed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_deployment_is_registered_as_operators_expect(deployed):
    done = subprocess.run(
        [PREFECT, "deployment", "inspect", "build-coarse/nightly", "--output", "json"],
        env=deployed,
        capture_output=True,
        text=True,
    )
    spec = json.loads(done.stdout)
    assert spec["work_pool_name"] == "emer-pool" and spec["entrypoint"] == "flows/build_coarse.py:build_coarse"
    assert [(s["schedule"]["cron"], s["active"]) for s in spec["schedules"]] == [
        ("0 2 * * *", False)
    ]  # off by default
    assert (
        spec["global_concurrency_limit"]["limit"] == 1
        and spec["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    )
    assert spec["parameters"]["corpus"].endswith("data/sample")


def test_deployment_runs_build_and_later_runs_are_incremental(deployed, servers, mer_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(mer_corpus, corpus)
    out = tmp_path / "out"
    params = {
        "corpus": str(corpus),
        "out_dir": str(out),
        "config_path": str(write_flow_config(tmp_path / "c.toml", servers)),
    }

    run_deployment(deployed, **params)
    first = json.loads((out / "build.json").read_text())
    assert first["model_calls"] > 0 and first["splits"]["train"] + first["splits"]["review"] >= 3

    before = served_requests(servers["text"]) + served_requests(servers["audio"])
    run_deployment(deployed, **params)  # nothing changed: no model is asked anything
    assert json.loads((out / "build.json").read_text())["model_calls"] == 0
    assert served_requests(servers["text"]) + served_requests(servers["audio"]) == before

    synth.talking_clip(corpus / "video" / "sample_00000003.mp4", "I can manage on my own, it is fine.")
    run_deployment(deployed, **params)
    grown = json.loads((out / "build.json").read_text())
    # one new clip with no subtitle: audio clue, visual clue, disambiguation, translation, labels;
    # each answered in one request or, for a reply that did not validate, up to two re-asks
    assert 5 <= grown["model_calls"] <= 5 * 3
    assert grown["clips"] == first["clips"] + 1
    names = {
        r["name"] for f in (out / "data").glob("*.parquet") for r in pq.read_table(f, columns=["name"]).to_pylist()
    }
    assert "sample_00000003" in names


def test_the_deployment_runs_on_a_postgresql_backed_server(prefect_server_on_postgres, servers, mer_corpus, tmp_path):
    env = deploy(prefect_server_on_postgres, tmp_path / "defaults")
    out = tmp_path / "out"
    run_deployment(
        env, corpus=str(mer_corpus), out_dir=str(out), config_path=str(write_flow_config(tmp_path / "c.toml", servers))
    )
    summary = json.loads((out / "build.json").read_text())
    assert (
        summary["splits"]["train"] + summary["splits"]["review"] >= 3
        and sum(summary["splits"].values()) == summary["clips"]
    )
