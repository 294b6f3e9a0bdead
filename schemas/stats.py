"""Per-stage statistics of a run (as datatrove's `stat_update`): what each stage cost."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StageStats(BaseModel):
    checkpoint_hits: int = Field(0, description="Answers read back from the checkpoint")
    runs: int = Field(0, description="Answers made in this run (checkpoint misses)")
    requests: int = Field(0, description="Questions sent to a model")
    attempts: int = Field(0, description="HTTP requests, re-asks included")
    failures: int = Field(0, description="Runs that ended without a usable answer")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = Field(0.0, description="Wall seconds spent answering, summed over clips (they overlap)")

    def add(self, other: StageStats) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class RunStats(BaseModel):
    stages: dict[str, StageStats] = Field(default_factory=dict)

    def stat_update(self, stage: str, **counts: float) -> None:
        entry = self.stages.setdefault(stage, StageStats())
        for name, n in counts.items():
            setattr(entry, name, getattr(entry, name) + n)

    def merge(self, other: RunStats) -> RunStats:
        for stage, entry in other.stages.items():
            self.stages.setdefault(stage, StageStats()).add(entry)
        return self

    @property
    def model_calls(self) -> int:
        return sum(s.attempts for s in self.stages.values())

    def table(self, order: list[str] | None = None) -> dict[str, dict]:
        """JSON for build.json, the card and the Prefect artifact: stages in `order` (others after, by
        name), seconds rounded."""
        rank = {name: i for i, name in enumerate(order or [])}
        names = sorted(self.stages, key=lambda n: (rank.get(n, len(rank)), n))
        return {n: self.stages[n].model_dump() | {"seconds": round(self.stages[n].seconds, 3)} for n in names}
