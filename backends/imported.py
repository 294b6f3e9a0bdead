"""The import backend: a role's stages answered from a file of existing outputs keyed by clip name (published
MLLM outputs, an earlier run's), so they are compared and reused without running the model again. Nothing is
requested: provenance records zero attempts, the file (`server = "import:<file name>"`), its MLLM (read from
the file's name) and its sha256 (`prompt_version`: the first 16 hex digits; `server_version`: all of them).
The file's sha256 is the backend's identity, so a changed file re-answers exactly the stages imported from it.

What can be imported, and from what (backends/import_files.py reads the files):

- `audio_clue`, `visual_clue`: a description file (name2reason npz, CSV, JSONL) gives the clue asked without the
  subtitle (one published output per clip); its `emotional_states` come from `states_file` (an openset file)
  when given, else are left empty (the disambiguation reads them from the text, as for a prose clue).
- `disambiguation`: a description file gives the description; `subtitle_analysis` comes from the CSV/JSONL
  column of that name, else is a note that the description holds it.
- `labels`: an openset file (*-openset.npz, or a CSV/JSONL of label lists) gives the labels.

The translation role is not importable: it serves two stages (a Chinese-only subtitle's translation too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backends.import_files import Holds, ImportedFile, ImportFileError, file_sha256, model_name, read_import
from schemas.config import RoleConfig
from schemas.replies import ClueReply, DescriptionReply, LabelsReply, Reply
from schemas.row import ModelCall
from schemas.stage import StageOutcome
from stages.contract import Backend, ClipContext, Stage, StageInputs

SHA_PREFIX = 16


@dataclass(frozen=True)
class Importer:
    holds: Holds
    # (the clip's entry, its states when a states file is given, the file) -> the replies the stage combines
    replies: Callable[[Any, list[str] | None, ImportedFile, str], dict[str, Reply]]


def _clue(text: str, states: list[str] | None, source: ImportedFile, name: str) -> dict[str, Reply]:
    # One published output per clip: it answers the ask the disambiguation reads first (stages.clues.primary_clue).
    return {"without_subtitle": ClueReply(clues=text, emotional_states=states or [])}


def _description(text: str, states: list[str] | None, source: ImportedFile, name: str) -> dict[str, Reply]:
    analysis = source.analyses.get(name) or f"not given apart: the description from {source.path.name} holds it"
    return {"description": DescriptionReply(subtitle_analysis=analysis, description=text)}


IMPORTERS: dict[str, Importer] = {
    "audio_clue": Importer("text", _clue),
    "visual_clue": Importer("text", _clue),
    "disambiguation": Importer("text", _description),
    "labels": Importer("labels", lambda labels, states, source, name: {"labels": LabelsReply(labels=labels)}),
}


def import_problems(role: str, stage: str, cfg: RoleConfig) -> list[str]:
    """Why `stage` cannot be answered from the role's files (one line each, naming the key), for the pre-flight."""
    if stage not in IMPORTERS:
        return [f"stage {stage!r} (role {role!r}) cannot be imported; importable stages: {', '.join(IMPORTERS)}"]
    problems = []
    if cfg.states_file and stage not in ("audio_clue", "visual_clue"):
        problems.append(f"roles.{role}.states_file: only a clue role reads emotional states from a file")
    for key, read in _files(cfg, IMPORTERS[stage].holds).items():
        try:
            read()
        except ImportFileError as exc:
            problems.append(f"roles.{role}.{key}: {exc}")
    return problems


def _files(cfg: RoleConfig, holds: Holds) -> dict[str, Callable[[], ImportedFile]]:
    files = {"file": lambda: read_import(cfg.file, holds, cfg.format, cfg.column)}
    if cfg.states_file:
        files["states_file"] = lambda: read_import(cfg.states_file, "labels")
    return files


def lineup_entry(cfg: RoleConfig) -> dict[str, Any]:
    """What the dataset card says about an import role (no parsing: the file's name and digest)."""
    files = [cfg.file] + ([cfg.states_file] if cfg.states_file else [])
    return {
        "models": [model_name(Path(cfg.file))],
        "prompt": " + ".join(f"import:{Path(f).name}@{file_sha256(f)[:SHA_PREFIX]}" for f in files),
        "media": "imported",
    }


class ImportBackend(Backend):
    kind = "import"

    def __init__(self, role: str, cfg: RoleConfig, stages: list[str]) -> None:
        """Reads the role's files now (start-up): a malformed one raises ImportFileError, naming the key."""
        self.role, self.cfg = role, cfg
        holds = {IMPORTERS[s].holds for s in stages if s in IMPORTERS}
        self.files: dict[Holds, dict[str, ImportedFile]] = {}
        for kind in holds:
            self.files[kind] = {}
            for key, read in _files(cfg, kind).items():
                try:
                    self.files[kind][key] = read()
                except ImportFileError as exc:
                    raise ImportFileError(f"roles.{role}.{key}: {exc}") from None

    def _sources(self, stage: Stage) -> dict[str, ImportedFile]:
        return self.files[IMPORTERS[stage.name].holds]

    def identity(self, stage: Stage) -> dict[str, Any]:
        # The files' content, not their path: a moved file is the same answers; an edited one is not.
        sources = self._sources(stage)
        return {
            "kind": self.kind,
            "files": {key: [f.format, f.sha256] for key, f in sources.items()},
            "column": self.cfg.column,
            "schema": stage.reply.model_json_schema(),
        }

    def reads_clip_name(self, stage: Stage) -> bool:
        return True  # answers are looked up by the clip's name: two clips of the same content keep their own

    def lineup_entry(self) -> dict[str, Any]:
        return lineup_entry(self.cfg)

    def _call(self, stage: Stage, source: ImportedFile) -> ModelCall:
        return ModelCall(
            stage=stage.name,
            prompt_id=f"import/{stage.name}",
            prompt_version=source.sha256[:SHA_PREFIX],
            model=source.model,
            server=f"import:{source.path.name}",
            server_version=f"sha256:{source.sha256}",
            sampling="{}",
            config_hash=self.identity_hash(stage),
            attempts=0,
        )

    async def answer(self, stage: Stage, inputs: StageInputs, clip: ClipContext) -> StageOutcome:
        sources = self._sources(stage)
        calls = [self._call(stage, source) for source in sources.values()]
        name, main, states_file = clip.record.name, sources["file"], sources.get("states_file")
        found = []
        for source in filter(None, (main, states_file)):
            if name in source.problems:
                return StageOutcome(calls=calls, error=source.problems[name])
            if name not in source.entries:
                return StageOutcome(calls=calls, error=f"{name} not in {source.path.name}")
            found.append(source.entries[name])
        states = found[1] if states_file else None
        try:
            replies = IMPORTERS[stage.name].replies(found[0], states, main, name)
        except ValidationError as exc:  # permanent for this file: checkpointed as such
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            return StageOutcome(calls=calls, error=f"{main.path.name}: {name}'s entry: {where}: {first['msg']}")
        return StageOutcome(value=stage.combine(inputs, replies), calls=calls)
