"""Progress of a long run: a Prefect progress artifact for the UI, and listeners (the CLI's rich bar)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

Listener = Callable[[int, int], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    _listeners.remove(listener)


class Progress:
    def __init__(self, total: int, key: str = "build-coarse-progress") -> None:
        self.total, self.done = total, 0
        self._artifact: UUID | None = create_progress_artifact(
            progress=0.0, key=key, description=f"Clips annotated of {total}"
        )

    def advance(self, n: int) -> None:
        self.done += n
        if self._artifact is not None:
            update_progress_artifact(self._artifact, progress=100.0 * self.done / max(self.total, 1))
        for listener in list(_listeners):
            listener(self.done, self.total)


def stage_table_artifact(table: dict[str, dict], key: str = "build-coarse-stages") -> None:
    """What each stage cost in this run (RunStats.table()), as a table in the flow run's Artifacts tab."""
    rows = [{"stage": stage} | entry for stage, entry in table.items()]
    create_table_artifact(table=rows, key=key, description="Per-stage statistics of this run")
