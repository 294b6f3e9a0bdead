"""Assemble a run from configuration: local servers, the gateway, a backend per role, the stages bound
to their backends, the checkpoint."""

from __future__ import annotations

import asyncio
import atexit
import difflib
import os
import re
import threading
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from annotators.client import EndpointPool, RoleClient
from annotators.prompts import PromptNotFound, load_prompt
from annotators.server import VLLMServer
from backends.imported import ImportBackend, import_problems
from backends.imported import lineup_entry as import_lineup_entry
from backends.measure import MeasurementBackend
from backends.openai import OpenAIBackend
from backends.signals import ANSWERS as SIGNAL_ANSWERS
from backends.signals import SignalsBackend
from engine import second_lineup as second
from engine.pipeline import DESCRIPTION_READERS, BoundStage, ClipPipeline
from runtime.checkpoint import Checkpoint
from runtime.gateway import Gateway
from runtime.isolation import IsolatedPool
from runtime.stats import collect
from schemas.config import ConfigError, EngineConfig, RoleConfig, stable_hash
from schemas.errors import UserError
from schemas.manifest import ClipRecord
from schemas.row import CoarseRow
from schemas.signals import AudioSignals, CorpusNorms
from schemas.stats import RunStats
from stages.contract import Backend, Stage
from stages.media_prep import MediaPrep
from stages.registry import METHOD_STAGES, UnknownStage, stage_class

MEASURE_ROLE = "signals"  # the measurement stage's: built in, never configured
PROBE_TIMEOUT_S = 3.0  # a server that does not answer /models this fast is not ready for a run either
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


class LineupError(UserError, ValueError):
    """The configuration names a line-up the stages cannot run: said before any work starts, one line
    per problem."""


class PreflightError(LineupError):
    """Something the configuration refers to is missing or not answering; `unreachable` lists the
    endpoints no server answered at."""

    def __init__(self, problems: list[str], unreachable: list[str]) -> None:
        self.problems, self.unreachable = problems, unreachable
        super().__init__("\n".join(problems))


def stage_classes(config: EngineConfig) -> dict[str, type[Stage]]:
    """Every stage of the run by name: the method's, then the line-up's extra ones in order."""
    classes, problems = _stage_classes(config)
    if problems:
        raise LineupError("\n".join(problems))
    return classes


def _stage_classes(config: EngineConfig) -> tuple[dict[str, type[Stage]], list[str]]:
    classes, problems = dict(METHOD_STAGES), []
    for ref in config.extra_stages:
        try:
            cls = stage_class(ref)
        except UnknownStage as exc:
            problems.append(f"extra_stages: {exc}")
            continue
        if cls.name in classes:
            problems.append(f"extra_stages: {ref!r} is named {cls.name!r}, which another stage already is")
            continue
        classes[cls.name] = cls
    return classes, problems


def check_lineup(config: EngineConfig) -> dict[str, type[Stage]]:
    """Every stage's role configured, every configured role answering some stage, every signals role
    answerable by the measuring annotators, every prompt file present. Returns the stages; raises
    LineupError listing every problem."""
    classes, problems = _lineup_problems(config)
    if problems:
        raise LineupError("\n".join(problems))
    return classes


def _lineup_problems(config: EngineConfig) -> tuple[dict[str, type[Stage]], list[str]]:
    classes, problems = _stage_classes(config)  # the stages that could be found are checked on
    wanted = {cls.role for cls in classes.values()} - {MEASURE_ROLE}
    if missing := sorted(wanted - set(config.roles)):
        problems.append(f"roles {missing} are not configured: the stages need {sorted(wanted)}")
    for role in sorted(set(config.roles) - wanted):
        near = difflib.get_close_matches(role, sorted(wanted), n=1)
        hint = f"did you mean {near[0]}?" if near else f"the stages need {sorted(wanted)}"
        problems.append(f"roles.{role}: answers no stage; {hint}")
    for name, cls in classes.items():
        if cls.role == MEASURE_ROLE or cls.role not in config.roles:
            continue
        cfg = config.roles[cls.role]
        if cfg.backend == "import":
            problems += import_problems(cls.role, name, cfg)
        if cfg.backend == "signals" and name not in SIGNAL_ANSWERS:
            problems.append(f"stage {name!r} (role {cls.role!r}) cannot be answered by the signals backend")
        if cfg.backend == "openai" and cfg.reply_format == "prose" and not getattr(cls.reply, "reads_prose", bool)():
            problems.append(
                f"roles.{cls.role}.reply_format: stage {name!r} needs a {cls.reply.__name__}, which prose cannot "
                'give; use reply_format = "json"'
            )
        if cfg.backend == "openai":
            try:
                load_prompt(role_prompt(cls.role, cfg, classes))
            except PromptNotFound as exc:
                problems.append(f"roles.{cls.role}.prompt: {exc}")
            except (LineupError, ValueError, KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                problems.append(f"roles.{cls.role}.prompt: unusable prompt file ({type(exc).__name__}: {exc})")
    return classes, list(dict.fromkeys(problems))  # roles shared by stages report once


def preflight(config: EngineConfig) -> dict[str, type[Stage]]:
    """Everything the configuration refers to, checked before any work: the line-up (check_lineup),
    prompt ids and files, the grounding rules file, each openai role's API key variable, and every
    endpoint answering (GET {base_url}/models, and the model listed when the server says which it
    serves) unless one of the configured local `servers` will serve it. Returns the stages; raises
    PreflightError listing every problem."""
    classes, problems = _lineup_problems(config)
    grounding = config.gates.grounding
    if grounding.enabled and grounding.rules is not None:
        from gates.grounding import load_rules

        try:
            load_rules(Path(grounding.rules))
        except FileNotFoundError:
            problems.append(f"gates.grounding.rules: no such file {grounding.rules}")
        except (OSError, ValueError, KeyError, TypeError, re.error) as exc:
            problems.append(
                f"gates.grounding.rules: {grounding.rules} is not a rules file ({type(exc).__name__}: {exc})"
            )
    wanted = {cls.role for cls in classes.values()}
    remote: dict[str, list[tuple[str, str, str | None]]] = {}  # base URL -> (role, model, API key)
    for role, cfg in config.roles.items():
        if cfg.backend != "openai" or role not in wanted:
            continue
        for endpoint in cfg.endpoints:
            key = None
            if endpoint.api_key_env:
                key = os.environ.get(endpoint.api_key_env)
                if not key:
                    problems.append(
                        f"roles.{role}: environment variable {endpoint.api_key_env} (the API key for "
                        f"{endpoint.base_url}) is not set"
                    )
            if not _served_locally(endpoint.base_url, config):
                remote.setdefault(endpoint.base_url, []).append((role, endpoint.model, key))
    unreachable = []
    with ThreadPoolExecutor(max(1, min(8, len(remote)))) as probes:
        answers = dict(zip(remote, probes.map(lambda url: _served_models(url, remote[url]), remote)))
    for url, answer in answers.items():
        roles = ", ".join(sorted({role for role, _, _ in remote[url]}))
        if isinstance(answer, str):
            unreachable.append(url)
            problems.append(f"roles {roles}: {answer}")
            continue
        for role, model, _ in remote[url]:
            if answer is not None and model not in answer:
                problems.append(f"roles.{role}: {url} serves {answer}, not {model!r}; set the endpoint's model to one")
    try:  # the second line-up, checked as this one is (its servers may be among this one's)
        if (other := second.second_config(config)) is not None:
            preflight(other.model_copy(update={"servers": [*config.servers, *other.servers]}))
    except ConfigError as exc:
        problems += exc.problems
    except PreflightError as exc:
        problems += [f"second_lineup {second.lineup_name(config)}: {line}" for line in exc.problems]
        unreachable += exc.unreachable
    if problems:
        raise PreflightError(list(dict.fromkeys(problems)), unreachable)
    return classes


def _served_locally(base_url: str, config: EngineConfig) -> bool:
    """A server of the config's own `servers` (started by the run, so not up yet) listens there."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname in LOCAL_HOSTS and any(server.port == port for server in config.servers)


def _served_models(base_url: str, users: list[tuple[str, str, str | None]]) -> list[str] | str | None:
    """The model ids the server lists; None when it answers without a list (any other HTTP answer
    means it is up); a string saying why when nothing answers, or no OpenAI API answers there."""
    key = next((key for _, _, key in users if key), None)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"no server answers at {base_url} ({type(exc).__name__}); start it or point the role at one"
    if response.status_code == 404:  # a server is there, but not an OpenAI API at this path
        return f"{base_url} has no /models (404): is base_url the API's root, e.g. http://host:8000/v1?"
    try:
        listed = response.json()["data"] if response.status_code == 200 else None
        return [str(model["id"]) for model in listed] if isinstance(listed, list) else None
    except (ValueError, KeyError, TypeError):
        return None


def role_prompt(role: str, cfg: RoleConfig, classes: dict[str, type[Stage]]) -> str:
    """The role's prompt id: as configured, else the one its stages declare."""
    if cfg.prompt:
        return cfg.prompt
    declared = {cls.prompt for cls in classes.values() if cls.role == role and cls.prompt}
    if len(declared) != 1:
        raise LineupError(f"role {role!r}: its stages declare prompts {sorted(declared)}; name one with `prompt`")
    return declared.pop()


def lineup(config: EngineConfig) -> dict[str, dict]:
    """Role -> models, prompt id and version: what the dataset card and provenance report."""
    classes = stage_classes(config)
    out = {}
    for role, cfg in config.roles.items():
        if cfg.backend == "signals":
            out[role] = SignalsBackend().lineup_entry()
            continue
        if cfg.backend == "import":
            out[role] = import_lineup_entry(cfg)
            continue
        prompt = load_prompt(role_prompt(role, cfg, classes))
        out[role] = {
            "models": [ep.model for ep in cfg.endpoints],
            "prompt": f"{prompt.id}@{prompt.version}",
            "media": cfg.media.value,
        }
    if (other := second.second_config(config)) is not None:
        out |= {second.prefix(second.lineup_name(config)) + role: entry for role, entry in lineup(other).items()}
    return out


def reads_corpus_norms(config: EngineConfig) -> bool:
    """Whether an answer of the line-up (or of its second line-up) reads the corpus's acoustic norms: only then
    must every clip be measured before the first clip is annotated; otherwise the norms serve the gates alone and
    come from the annotated rows, and model calls start at once."""
    signals = SignalsBackend()
    for cfg in (config, second.second_config(config)):
        if cfg is None:
            continue
        for cls in stage_classes(cfg).values():
            role = cfg.roles.get(cls.role)
            if role is not None and role.backend == "signals" and "corpus" in signals.reads_measurements(cls()):
                return True
    return False


class Engine:
    def __init__(self, config: EngineConfig, state_dir: Path, checkpoint: Checkpoint) -> None:
        self.config, self.state_dir, self.checkpoint = config, state_dir, checkpoint
        self.stage_classes = check_lineup(config)
        self.second_config = second.second_config(config)
        self.second_classes = check_lineup(self.second_config) if self.second_config else {}
        self.second: ClipPipeline | None = None
        self._stack = ExitStack()

    def __enter__(self) -> Engine:
        try:
            self.gateway = Gateway()
            self._stack.callback(self.gateway.close)
            self.pool = IsolatedPool(self.config.decode_workers)
            self._stack.callback(self.pool.close)
            media = MediaPrep(self.state_dir / "media", self.config.media, self.pool)
            endpoints = EndpointPool()
            self._stack.callback(lambda: self.gateway.run(endpoints.aclose()))
            self._stack.callback(lambda: self.gateway.run(self.gateway.cancel_pending()))
            backends = {role: self._backend(role, endpoints) for role in self.config.roles}
            backends[MEASURE_ROLE] = MeasurementBackend(self.pool)
            stages = {name: BoundStage(cls(), backends[cls.role]) for name, cls in self.stage_classes.items()}
            extras = tuple(name for name in self.stage_classes if name not in METHOD_STAGES)
            self.pipeline = ClipPipeline(
                checkpoint=self.checkpoint,
                media=media,
                stages=stages,
                description_readers=DESCRIPTION_READERS + extras,
                max_clips_in_flight=self.config.max_clips_in_flight,
            )
            if self.second_config is not None:  # same checkpoint, media and measurements; its own backends
                other = {role: self._backend(role, endpoints, self.second_config) for role in self.second_config.roles}
                other[MEASURE_ROLE] = backends[MEASURE_ROLE]
                self.second = ClipPipeline(
                    checkpoint=self.checkpoint,
                    media=media,
                    stages={name: BoundStage(cls(), other[cls.role]) for name, cls in self.second_classes.items()},
                    description_readers=second.SECOND_READERS,
                    max_clips_in_flight=self.config.max_clips_in_flight,
                    flights=self.pipeline._pending,
                )
        except BaseException:
            self._stack.close()
            raise
        return self

    def _backend(self, role: str, endpoints: EndpointPool, config: EngineConfig | None = None) -> Backend:
        config = config or self.config
        classes = self.second_classes if config is self.second_config else self.stage_classes
        cfg = config.roles[role]
        if cfg.backend == "signals":
            return SignalsBackend()
        if cfg.backend == "import":  # reads its files now: a malformed one stops the start-up, naming the key
            return ImportBackend(role, cfg, [name for name, cls in classes.items() if cls.role == role])
        prompt = load_prompt(role_prompt(role, cfg, classes))
        # The client's own hash is the role's; each stage's provenance carries its backend identity's.
        return OpenAIBackend(
            RoleClient(role, cfg, prompt, stable_hash([role, cfg.model_dump(mode="json"), prompt.sha]), endpoints)
        )

    def annotate(
        self, records: list[ClipRecord], norms: CorpusNorms | None = None
    ) -> tuple[list[CoarseRow], RunStats]:
        """Rows for a batch, and what each stage cost in it (checkpoint hits, requests, tokens, seconds).
        `norms`: the corpus's acoustic norms (from `measure` over the whole corpus), for the answers that read them."""

        async def batch() -> tuple[list[CoarseRow], RunStats]:
            stats = collect()
            rows = list(await asyncio.gather(*(self._annotate(r, norms, stats) for r in records)))
            return rows, stats

        return self.gateway.run(batch())

    async def _annotate(self, record: ClipRecord, norms: CorpusNorms | None, stats: RunStats) -> CoarseRow:
        """One clip through the line-up, then, once it is complete, through the second line-up (after it: a
        stage both declare alike is then a checkpoint hit)."""
        row = await self.pipeline.run_safely(record, norms)
        if self.second is None or not row.complete:
            return row

        async def apart() -> tuple[CoarseRow, RunStats]:
            costs = collect()  # in this task's own context: the second line-up's costs, named apart below
            return await self.second.run_safely(record, norms), costs

        other, costs = await asyncio.create_task(apart())
        name = second.lineup_name(self.config)
        measured = {"media_prep", MEASURE_ROLE}  # the first line-up's work, read back: not the second's cost
        for stage, entry in costs.stages.items():
            if stage not in measured:
                stats.stages.setdefault(second.prefix(name) + stage, type(entry)()).add(entry)
        return second.attach(row, other, name, measured)

    def measure(self, records: list[ClipRecord]) -> tuple[list[AudioSignals | None], RunStats]:
        """The corpus pass: media prep and measurements only (both checkpointed, so `annotate` reuses them);
        each clip's audio measurements (None where it has none), for `corpus_norms`."""

        async def batch() -> tuple[list[AudioSignals | None], RunStats]:
            stats = collect()
            rows = await asyncio.gather(*(self.pipeline.run_safely(r, measure_only=True) for r in records))
            return [row.signals.audio if row.signals else None for row in rows], stats

        return self.gateway.run(batch())

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def config_fingerprint(config: EngineConfig) -> str:
    return stable_hash(lineup(config))


# One engine per process and configuration: batch tasks on threads share the driver's, and on a
# distributed runner (Dask) each worker process builds its own from the task's parameters.
_engines: dict[tuple[str, str], Engine] = {}
_engines_lock = threading.Lock()


def engine_for(config: EngineConfig, state_dir: Path) -> Engine:
    key = (stable_hash(config.model_dump(mode="json")), str(state_dir))
    with _engines_lock:
        if key not in _engines:
            checkpoint = Checkpoint(state_dir / "checkpoint.sqlite")
            engine = Engine(config, state_dir, checkpoint).__enter__()
            engine._stack.callback(checkpoint.close)
            _engines[key] = engine
        return _engines[key]


def close_engines() -> None:
    with _engines_lock:
        while _engines:
            _engines.popitem()[1].__exit__(None, None, None)


atexit.register(close_engines)  # a Dask worker's engine lives as long as the worker


@contextmanager
def local_servers(config: EngineConfig, state_dir: Path) -> Iterator[None]:
    """Start the config's vLLM servers for a run (driver only: workers just talk to them)."""
    other = second.second_config(config)
    ours = {spec.port for spec in config.servers}  # a server both line-ups name is started once
    specs = [*config.servers, *(spec for spec in (other.servers if other else []) if spec.port not in ours)]
    servers = [VLLMServer(spec, state_dir) for spec in specs]
    try:
        # Started side by side: each spends most of a minute compiling and warming up.
        with ThreadPoolExecutor(max(1, len(servers))) as starter:
            list(starter.map(VLLMServer.start, servers))
        yield
    finally:
        for server in servers:
            server.stop()
