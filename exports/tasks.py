"""The questions of the instruction exports (tasks.toml, versioned data) and the row's fields they are filled
with: what the engine measured and said about the clip."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from schemas.row import ClueSet, CoarseRow

TASKS_FILE = Path(__file__).with_name("tasks.toml")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Task:
    id: str
    media: tuple[str, ...]
    question: str
    answer: str
    requires: tuple[str, ...]

    def fits(self, fields: dict[str, str | None]) -> bool:
        return all(fields.get(name) for name in self.requires)


@dataclass(frozen=True)
class Tasks:
    version: str
    reasoning: Task
    atomic: tuple[Task, ...]
    chain_of_thought: Task


def _task(entry: dict, default_id: str) -> Task:
    return Task(
        id=entry.get("id", default_id),
        media=tuple(entry.get("media", [])),
        question=entry["question"],
        answer=entry["answer"],
        requires=tuple(entry.get("requires", [])),
    )


@functools.cache
def load_tasks(path: Path = TASKS_FILE) -> Tasks:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return Tasks(
        version=str(data["version"]),
        reasoning=_task(data["reasoning"], "reasoning"),
        atomic=tuple(_task(entry, f"atomic_{i}") for i, entry in enumerate(data["atomic"])),
        chain_of_thought=_task(data["chain_of_thought"], "chain_of_thought"),
    )


def _clue(clue: ClueSet | None) -> str | None:
    """The clue as the signal alone showed it (asked without the subtitle), else the one asked with it."""
    if clue is None:
        return None
    reply = clue.without_subtitle or clue.with_subtitle
    return reply.clues if reply else None


def action_units_text(row: CoarseRow) -> str | None:
    """The measured facial actions in words, strongest presence first; None when none were measured."""
    visual = row.signals.visual if row.signals else None
    units = list(getattr(visual, "action_units", None) or [])  # measured by newer signal annotators only
    if not units:
        return None
    active = sorted((u for u in units if u.active_ratio > 0), key=lambda u: -u.active_ratio)
    if not active:
        return "No facial action unit was active in the frames with a face."
    return "; ".join(
        f"{u.au} ({u.name}): present in {100 * u.active_ratio:.0f}% of the face frames, peak intensity {u.peak:.2f}"
        for u in active
    )


def row_fields(row: CoarseRow) -> dict[str, str | None]:
    return {
        "subtitle": row.subtitle,
        "visual_clue": _clue(row.visual_clue),
        "audio_clue": _clue(row.audio_clue),
        "action_units": action_units_text(row),
        "subtitle_analysis": row.subtitle_analysis,
        "description": row.description_en,
        "labels": ", ".join(row.labels) if row.labels else None,
    }


def fill(template: str, fields: dict[str, str | None]) -> str:
    """`template` with the row's fields; a line whose every placeholder is empty is left out (a silent clip's
    chain of thought has no acoustic-clue line)."""
    lines = []
    for line in template.splitlines():
        names = _PLACEHOLDER.findall(line)
        if names and not any(fields.get(n) for n in names):
            continue
        lines.append(_PLACEHOLDER.sub(lambda m: fields.get(m.group(1)) or "", line))
    return "\n".join(lines)
