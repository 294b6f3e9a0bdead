"""Per-stage statistics collected where the work happens, without threading a counter through calls.

A batch's clips run as tasks spawned from one context, so they all update that batch's `RunStats`."""

from __future__ import annotations

from contextvars import ContextVar

from schemas.stats import RunStats

_current: ContextVar[RunStats | None] = ContextVar("emer_run_stats", default=None)


def collect() -> RunStats:
    """Start collecting for the coroutines spawned from the current context; returns the collector."""
    stats = RunStats()
    _current.set(stats)
    return stats


def stat_update(stage: str, **counts: float) -> None:
    """Count for the current collector; work outside any collection (a lone test call) is not counted."""
    if (stats := _current.get()) is not None:
        stats.stat_update(stage, **counts)
