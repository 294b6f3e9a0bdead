"""Issue 16.7 and 16.8: a configuration is checked before any work, and the CLI answers a user's
mistake in one or two lines that name the file, the key and what to do (a traceback only with --debug).

Checked against what the engine itself says and does: the ConfigError / PreflightError lines, the
`emer-coarse` command's exit status and terminal output (in a real subprocess where the terminal
matters), and whether anything was written into OUT.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from schemas.config import EngineConfig

ROOT = Path(__file__).resolve().parents[2]
SIGNALS = ROOT / "data" / "configs" / "cpu-signals.toml"
ROLES = ("audio_clue", "visual_clue", "disambiguation", "translation", "labels")


SIGNAL_ROLES = "".join(f'[roles.{role}]\nbackend = "signals"\n' for role in ROLES)


def config_file(tmp_path: Path, extra: str) -> Path:
    """The zero-download line-up with `extra` (top-level keys and tables) before its roles."""
    path = tmp_path / "engine.toml"
    path.write_text(extra + "\n" + SIGNAL_ROLES, encoding="utf-8")
    return path


def cli(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """`emer-coarse ARGS` as a user runs it: its own process, its real terminal output."""
    clean = {k: v for k, v in os.environ.items() if k != "EMER_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=ROOT,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- 16.7: configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, typo, key, nearest",
    [
        ("[gates.av_match]", "min_speech_ration = 0.2", "gates.av_match.min_speech_ration", "min_speech_ratio"),
        ("[media]", "frames_per_sec = 2.0", "media.frames_per_sec", "frames_per_second"),
        ("[gates.length]", "min_word = 3", "gates.length.min_word", "min_words"),
        ("[roles.labels.sampling]", "temprature = 0.5", "roles.labels.sampling.temprature", "temperature"),
    ],
)
def test_an_unknown_key_at_any_depth_is_refused_with_its_dotted_path_and_the_nearest_key(
    tmp_path, section, typo, key, nearest
):
    path = config_file(tmp_path, f"{section}\n{typo}\n")
    with pytest.raises(ValueError) as refused:
        EngineConfig.from_file(path)
    assert f"{path}: {key}: unknown key; did you mean {nearest}?" in str(refused.value).splitlines()


@pytest.mark.parametrize(
    "extra, key, why",
    [
        ("batch_size = true\n", "batch_size", "a number is wanted, not true"),
        ("[gates.length]\nmin_words = 500\nmax_words = 450\n", "gates.length", "min_words (500) is above max_words"),
        ("[media]\naudio_sample_rate = -5\n", "media.audio_sample_rate", "greater than or equal to 8000"),
        ("[media]\naudio_sample_rate = 1000000\n", "media.audio_sample_rate", "less than or equal to 48000"),
        ('dask_address = "tcp://scheduler:8786"\n', "configuration", "task_runner is"),
    ],
)
def test_impossible_values_are_refused_naming_the_key(tmp_path, extra, key, why):
    path = config_file(tmp_path, extra)
    with pytest.raises(ValueError) as refused:
        EngineConfig.from_file(path)
    line = next((ln for ln in str(refused.value).splitlines() if ln.startswith(f"{path}: {key}: ")), "")
    assert why in line, str(refused.value)


def test_an_endpoint_that_is_not_an_http_url_is_refused(tmp_path):
    roles = "".join(
        f'[roles.{role}]\nendpoints = [{{ base_url = "127.0.0.1:8000/v1", model = "m" }}]\n' for role in ROLES
    )
    path = tmp_path / "engine.toml"
    path.write_text(roles)
    with pytest.raises(ValueError, match=r"roles\.labels\.endpoints\[0\]\.base_url: an http:// or https:// URL"):
        EngineConfig.from_file(path)


def test_every_shipped_line_up_still_loads():
    for path in sorted((ROOT / "data" / "configs").glob("*.toml")):
        EngineConfig.from_file(path)


class ModelsServer:
    """An OpenAI-compatible server that answers GET /v1/models only, listing `models`."""

    def __init__(self, models: list[str]) -> None:
        body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in models]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/v1/models" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()


def openai_lineup(tmp_path: Path, url_of: dict[str, str], model: str = "m", extra: str = "") -> Path:
    path = tmp_path / "served.toml"
    roles = "".join(
        f'[roles.{role}]\nendpoints = [{{ base_url = "{url_of.get(role, url_of["*"])}", model = "{model}" }}]\n'
        for role in ROLES
    )
    path.write_text(extra + roles)
    return path


def test_every_reference_is_checked_before_any_work_and_all_problems_are_named(tmp_path):
    """A stage that cannot be imported, a missing prompt, a missing rules file, a server that is down,
    one that serves another model and a base URL without the API under it: one run says all six, and
    writes nothing."""
    up = ModelsServer(["tiny-text"])
    try:
        down = f"http://127.0.0.1:{closed_port()}/v1"
        path = openai_lineup(
            tmp_path,
            {"*": up.url, "audio_clue": down, "translation": up.url.removesuffix("/v1")},
            model="tiny-txet",
            extra='extra_stages = ["no_such_package.stages:Stage"]\n[gates.grounding]\nrules = "no-such-rules.toml"\n',
        )
        path.write_text(path.read_text().replace("[roles.labels]\n", '[roles.labels]\nprompt = "labelz"\n'))
        out = tmp_path / "out"
        done = cli("build", str(tmp_path), "--out", str(out), "--config", str(path))
    finally:
        up.close()
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert f"roles audio_clue: no server answers at {down}" in said
    assert "roles.labels.prompt: no prompt 'labelz'" in said
    assert "extra_stages: cannot import stage 'no_such_package.stages:Stage'" in said
    assert "gates.grounding.rules: no such file no-such-rules.toml" in said
    assert f"roles.visual_clue: {up.url} serves ['tiny-text'], not 'tiny-txet'" in said
    root = up.url.removesuffix("/v1")
    assert f"roles translation: {root} has no /models (404): is base_url the API's root" in said
    assert "Traceback" not in said and not out.exists()


def test_an_endpoint_a_configured_local_server_will_serve_is_not_probed(tmp_path):
    from engine.assembly import preflight

    port = closed_port()  # nothing listens yet: the run starts the server itself
    server = f'[[servers]]\nname = "text"\nmodel = "tiny:text"\nport = {port}\n'
    path = openai_lineup(tmp_path, {"*": f"http://localhost:{port}/v1"}, extra=server)
    assert "labels" in preflight(EngineConfig.from_file(path))


def ports_free(*ports: int) -> bool:
    for port in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return False
    return True


@pytest.mark.skipif(not ports_free(8001, 8002, 8003), reason="a server listens where the GPU line-up expects one")
def test_without_a_config_and_without_its_servers_the_build_stops_and_names_the_zero_download_line_up(tmp_path):
    out = tmp_path / "out"
    done = cli("build", str(tmp_path), "--out", str(out))
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert "no server answers at http://127.0.0.1:8001/v1" in said
    assert "--config data/configs/cpu-signals.toml" in said
    assert "Traceback" not in said and not out.exists()


@pytest.mark.cli_build  # a whole CLI build in its own process
def test_a_build_in_which_no_clip_could_be_annotated_exits_non_zero(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("a", "b"):
        (corpus / f"{name}.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    done = cli("build", str(corpus), "--out", str(out), "--config", str(SIGNALS), timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "no clip could be annotated: all 2 are in the failed split" in said
    summary = json.loads((out / "build.json").read_text())  # the failed rows are still written, with reasons
    assert summary["clips"] == 2 and summary["splits"]["failed"] == 2


# --- 16.8: the CLI's answers ------------------------------------------------------------------------


def test_a_config_mistake_is_one_line_per_problem_and_a_traceback_only_with_debug(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("batch_size = 16\n[media\nmax_frames = 4\n")
    out = tmp_path / "out"
    done = cli("build", str(tmp_path), "--out", str(out), "--config", str(path))
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"{path}: not valid TOML: ") and "(at line 2, column 7)" in line
    for debug, env in ((["--debug"], {}), ([], {"EMER_DEBUG": "1"})):
        shown = cli(*debug, "build", str(tmp_path), "--out", str(out), "--config", str(path), env=env)
        assert shown.returncode != 0 and "Traceback" in shown.stderr
    assert not out.exists()


RAISE_IN_FLOW = """
import sys
try:
    from schemas.errors import UserError
except ImportError:  # the code before the fix has no such convention
    UserError = ValueError
import flows.build_coarse as build

def discover(corpus):
    raise UserError(f"{corpus}/subtitle_chieng.csv: line 3, byte 41: neither UTF-8 nor GB18030 text")

build.discover = discover
from flows.cli import app
sys.argv = ["emer-coarse", *sys.argv[1:]]
app()
"""


@pytest.mark.cli_build  # a whole CLI build in its own process
def test_a_user_error_raised_inside_the_flow_is_one_line_without_prefect_tracebacks(tmp_path):
    """A refused OUT or an undecodable subtitle table is found inside the flow run; Prefect would log
    the run's traceback, the CLI prints the user's line only."""
    done = subprocess.run(
        [sys.executable, "-c", RAISE_IN_FLOW, "build", str(tmp_path), "--out", str(tmp_path / "out"), "-c", SIGNALS],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "EMER_DEBUG"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert f"{tmp_path}/subtitle_chieng.csv: line 3, byte 41: neither UTF-8 nor GB18030 text" in done.stderr
    assert "Traceback" not in said and "UserError" not in said


class FakeFlow:
    """Stands in for the build-coarse flow: records its parameters, returns `summary`."""

    def __init__(self, summary: dict, takes_force: bool = True) -> None:
        self.summary, self.params = summary, None
        if takes_force:
            self.fn = lambda corpus, out_dir, config_path=None, force=False: None
        else:
            self.fn = lambda corpus, out_dir, config_path=None: None

    def __call__(self, **params):
        self.params = params
        return self.summary


def test_force_reaches_the_flow_and_its_help_says_what_it_allows(tmp_path, monkeypatch):
    import flows.build_coarse as build

    help_text = CliRunner().invoke(app, ["build", "--help"], terminal_width=200).output
    assert "--force" in help_text and "non-empty OUT the engine did not write" in help_text

    flow = FakeFlow({"splits": {"train": 1, "failed": 0}, "clips": 1, "stages": {}})
    monkeypatch.setattr(build, "build_coarse", flow)
    args = ["build", str(tmp_path), "--out", str(tmp_path / "out"), "--config", str(SIGNALS)]
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0
    assert flow.params["force"] is True
    assert CliRunner().invoke(app, args).exit_code == 0 and flow.params["force"] is False

    older = FakeFlow(flow.summary, takes_force=False)  # a flow without the parameter is not sent it
    monkeypatch.setattr(build, "build_coarse", older)
    assert CliRunner().invoke(app, args).exit_code == 0 and "force" not in older.params


def test_a_full_disk_under_the_flow_is_one_line_naming_the_file_and_what_to_do(tmp_path, monkeypatch):
    import flows.build_coarse as build

    shard = tmp_path / "out" / "data" / "train-00000-of-00001.parquet"

    class DiskFull(FakeFlow):
        def __call__(self, **params):
            raise OSError(errno.ENOSPC, "No space left on device", str(shard))

    monkeypatch.setattr(build, "build_coarse", DiskFull({}))
    result = CliRunner().invoke(app, ["build", str(tmp_path), "--out", str(tmp_path / "out"), "-c", str(SIGNALS)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"{shard}: no space left on the device: free some space and run again (finished work is kept)"
    )
