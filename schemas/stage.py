"""A stage's outcome for one clip, as checkpointed and as assembled into a row."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from schemas.row import ModelCall


class StageOutcome(BaseModel):
    value: dict[str, Any] | None = Field(None, description="The stage's output model, as JSON")
    calls: list[ModelCall] = Field(default_factory=list)
    error: str | None = None
    raw: str | None = Field(None, description="Raw model text when it could not be used")
    transient: bool = Field(False, description="Failed for a reason worth retrying on the next run")

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None
