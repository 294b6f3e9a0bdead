"""Assemble a run from configuration: local servers, the gateway, a backend per role, the stages bound
to their backends, the checkpoint."""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from annotators.client import EndpointPool, RoleClient
from annotators.prompts import load_prompt
from annotators.server import VLLMServer
from backends.measure import MeasurementBackend
from backends.openai import OpenAIBackend
from backends.signals import ANSWERS as SIGNAL_ANSWERS
from backends.signals import SignalsBackend
from engine.pipeline import DESCRIPTION_READERS, BoundStage, ClipPipeline
from runtime.checkpoint import Checkpoint
from runtime.gateway import Gateway
from runtime.isolation import IsolatedPool
from runtime.stats import collect
from schemas.config import EngineConfig, RoleConfig, stable_hash
from schemas.manifest import ClipRecord
from schemas.row import CoarseRow
from schemas.stats import RunStats
from stages.contract import Backend, Stage
from stages.media_prep import MediaPrep
from stages.registry import METHOD_STAGES, stage_class

MEASURE_ROLE = "signals"  # the measurement stage's: built in, never configured


class LineupError(ValueError):
    """The configuration names a line-up the stages cannot run: said before any work starts."""


def stage_classes(config: EngineConfig) -> dict[str, type[Stage]]:
    """Every stage of the run by name: the method's, then the line-up's extra ones in order."""
    classes = dict(METHOD_STAGES)
    for ref in config.extra_stages:
        cls = stage_class(ref)
        if cls.name in classes:
            raise LineupError(f"extra stage {ref!r} is named {cls.name!r}, which another stage already is")
        classes[cls.name] = cls
    return classes


def check_lineup(config: EngineConfig) -> dict[str, type[Stage]]:
    """Every stage's role configured, every configured role answering some stage, every signals role
    answerable by the measuring annotators, every prompt file present. Returns the stages."""
    classes = stage_classes(config)
    wanted = {cls.role for cls in classes.values()} - {MEASURE_ROLE}
    if missing := sorted(wanted - set(config.roles)):
        raise LineupError(f"roles {missing} are not configured: the stages need {sorted(wanted)}")
    if unknown := sorted(set(config.roles) - wanted):
        raise LineupError(f"roles {unknown} answer no stage: the stages need {sorted(wanted)}")
    for name, cls in classes.items():
        if cls.role == MEASURE_ROLE:
            continue
        cfg = config.roles[cls.role]
        if cfg.backend == "signals" and name not in SIGNAL_ANSWERS:
            raise LineupError(f"stage {name!r} (role {cls.role!r}) cannot be answered by the signals backend")
        if cfg.backend == "openai":
            load_prompt(role_prompt(cls.role, cfg, classes))
    return classes


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
        prompt = load_prompt(role_prompt(role, cfg, classes))
        out[role] = {
            "models": [ep.model for ep in cfg.endpoints],
            "prompt": f"{prompt.id}@{prompt.version}",
            "media": cfg.media.value,
        }
    return out


class Engine:
    def __init__(self, config: EngineConfig, state_dir: Path, checkpoint: Checkpoint) -> None:
        self.config, self.state_dir, self.checkpoint = config, state_dir, checkpoint
        self.stage_classes = check_lineup(config)
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
        except BaseException:
            self._stack.close()
            raise
        return self

    def _backend(self, role: str, endpoints: EndpointPool) -> Backend:
        cfg = self.config.roles[role]
        if cfg.backend == "signals":
            return SignalsBackend()
        prompt = load_prompt(role_prompt(role, cfg, self.stage_classes))
        # The client's own hash is the role's; each stage's provenance carries its backend identity's.
        return OpenAIBackend(
            RoleClient(role, cfg, prompt, stable_hash([role, cfg.model_dump(mode="json"), prompt.sha]), endpoints)
        )

    def annotate(self, records: list[ClipRecord]) -> tuple[list[CoarseRow], RunStats]:
        """Rows for a batch, and what each stage cost in it (checkpoint hits, requests, tokens, seconds)."""

        async def batch() -> tuple[list[CoarseRow], RunStats]:
            stats = collect()
            rows = list(await asyncio.gather(*(self.pipeline.run_safely(r) for r in records)))
            return rows, stats

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
    servers = [VLLMServer(spec, state_dir) for spec in config.servers]
    try:
        # Started side by side: each spends most of a minute compiling and warming up.
        with ThreadPoolExecutor(max(1, len(servers))) as starter:
            list(starter.map(VLLMServer.start, servers))
        yield
    finally:
        for server in servers:
            server.stop()
