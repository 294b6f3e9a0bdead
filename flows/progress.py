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


def progress_sentence(done: int, total: int) -> str:
    """What the artifact's card says: the Prefect UI shows a progress artifact's description on the run's
    Artifacts tab and its percentage only on the artifact's own page, so the numbers are in the words."""
    if total == 0:
        return "No clips to annotate"
    return f"{done} of {total} clips annotated ({100 * done // total}%)"


class Progress:
    def __init__(self, total: int, key: str = "build-coarse-progress") -> None:
        self.total, self.done = total, 0
        self._artifact: UUID | None = create_progress_artifact(
            progress=self.percent, key=key, description=progress_sentence(0, total)
        )

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def advance(self, n: int) -> None:
        self.done += n
        if self._artifact is not None:
            update_progress_artifact(
                self._artifact, progress=self.percent, description=progress_sentence(self.done, self.total)
            )
        for listener in list(_listeners):
            listener(self.done, self.total)


def stage_table_artifact(table: dict[str, dict], key: str = "build-coarse-stages") -> None:
    """What each stage cost in this run (RunStats.table()), as a table in the flow run's Artifacts tab."""
    rows = [{"stage": stage} | entry for stage, entry in table.items()]
    create_table_artifact(table=rows, key=key, description="Per-stage statistics of this run")
