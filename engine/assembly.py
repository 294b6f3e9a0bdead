"""Assemble a run from configuration: local servers, the gateway, role clients, stages, checkpoint."""

from __future__ import annotations

import asyncio
import atexit
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Iterator
from pathlib import Path

from annotators.client import EndpointPool, RoleClient, role_config_hash
from annotators.prompts import load_prompt
from annotators.server import VLLMServer
from runtime.checkpoint import Checkpoint
from runtime.gateway import Gateway
from runtime.isolation import IsolatedPool
from engine.pipeline import ClipPipeline, count_calls
from stages.clues import AudioClueStage, VisualClueStage
from stages.disambiguation import DisambiguationStage
from stages.labels import LabelsStage
from stages.media_prep import MediaPrep
from stages import signal_roles
from stages.signals import MeasureSignalsStage
from stages.translation import TranslationStage
from schemas.config import EngineConfig, stable_hash
from schemas.manifest import ClipRecord
from schemas.replies import ClueReply, DescriptionReply, LabelsReply, Reply, TranslationReply
from schemas.row import CoarseRow

REPLY_MODELS: dict[str, type[Reply]] = {
    "audio_clue": ClueReply,
    "visual_clue": ClueReply,
    "disambiguation": DescriptionReply,
    "translation": TranslationReply,
    "labels": LabelsReply,
}


def lineup(config: EngineConfig) -> dict[str, dict]:
    """Role -> models, prompt id and version: what the dataset card and provenance report."""
    out = {}
    for role, cfg in config.roles.items():
        if cfg.backend == "signals":
            out[role] = signal_roles.lineup_entry()
            continue
        prompt = load_prompt(cfg.prompt)
        out[role] = {"models": [ep.model for ep in cfg.endpoints], "prompt": f"{prompt.id}@{prompt.version}", "media": cfg.media.value}
    return out


class Engine:
    def __init__(self, config: EngineConfig, state_dir: Path, checkpoint: Checkpoint) -> None:
        self.config, self.state_dir, self.checkpoint = config, state_dir, checkpoint
        self._stack = ExitStack()

    def __enter__(self) -> "Engine":
        try:
            self.gateway = Gateway()
            self._stack.callback(self.gateway.close)
            self.pool = IsolatedPool(self.config.decode_workers)
            self._stack.callback(self.pool.close)
            media = MediaPrep(self.state_dir / "media", self.config.media, self.pool)
            endpoints = EndpointPool()
            self._stack.callback(lambda: self.gateway.run(endpoints.aclose()))
            self._stack.callback(lambda: self.gateway.run(self.gateway.cancel_pending()))
            served = {role for role, cfg in self.config.roles.items() if cfg.backend == "openai"}
            clients = {role: self._client(role, media, endpoints) for role in served}

            def pick(role: str, model_stage, signal_stage):
                return model_stage(clients[role]) if role in served else signal_stage()

            self.pipeline = ClipPipeline(
                checkpoint=self.checkpoint,
                media=media,
                signals=MeasureSignalsStage(self.pool, media.frames_hash + media.audio_hash),
                audio_clue=pick("audio_clue", AudioClueStage, signal_roles.SignalAudioClueStage),
                visual_clue=pick("visual_clue", VisualClueStage, signal_roles.SignalVisualClueStage),
                subtitle_translation=pick(
                    "translation",
                    lambda c: TranslationStage(c, "subtitle_translation", "zh_to_en"),
                    lambda: signal_roles.SignalTranslationStage("subtitle_translation", "zh_to_en"),
                ),
                disambiguation=pick("disambiguation", DisambiguationStage, signal_roles.SignalDisambiguationStage),
                translation=pick(
                    "translation",
                    lambda c: TranslationStage(c, "translation", "en_to_zh"),
                    lambda: signal_roles.SignalTranslationStage("translation", "en_to_zh"),
                ),
                labels=pick("labels", LabelsStage, signal_roles.SignalLabelsStage),
                max_clips_in_flight=self.config.max_clips_in_flight,
            )
        except BaseException:
            self._stack.close()
            raise
        return self

    def _client(self, role: str, media: MediaPrep, endpoints: EndpointPool) -> RoleClient:
        cfg = self.config.roles[role]
        prompt = load_prompt(cfg.prompt)
        # What a clue model is shown is part of its config hash: frames for the visual, audio for the audio clue.
        extra = {"audio_clue": media.audio_hash, "visual_clue": media.frames_hash}.get(role)
        return RoleClient(role, cfg, prompt, role_config_hash(role, cfg, prompt, REPLY_MODELS[role], extra), endpoints)

    def annotate(self, records: list[ClipRecord]) -> tuple[list[CoarseRow], int]:
        """Rows for a batch, and the model requests this batch made (checkpoint hits excluded)."""

        async def batch() -> tuple[list[CoarseRow], int]:
            counter = count_calls()
            rows = list(await asyncio.gather(*(self.pipeline.run_safely(r) for r in records)))
            return rows, counter.n

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
