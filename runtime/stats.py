"""Per-stage statistics collected where the work happens, without threading a counter through calls.

A batch's clips run as tasks spawned from one context, so they all update that batch's `RunStats`."""

from __future__ import annotations

from contextvars import ContextVar

from schemas.stats import RunStats

_current: ContextVar[RunStats] = ContextVar("emer_run_stats", default=RunStats())


def collect() -> RunStats:
    """Start collecting for the coroutines spawned from the current context; returns the collector."""
    stats = RunStats()
    _current.set(stats)
    return stats


def stat_update(stage: str, **counts: float) -> None:
    _current.get().stat_update(stage, **counts)
