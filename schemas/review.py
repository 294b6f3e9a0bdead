"""A human reviewer's decision on a row a gate held back."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReviewDecision(BaseModel):
    name: str
    sha256: str = Field(description="The clip content the decision is about: a changed clip is reviewed again")
    accepted: bool
    labels: list[str] | None = Field(None, description="Labels as corrected by the reviewer; None keeps the model's")
    note: str | None = None
    reviewer: str | None = None
    # ISO 8601 text: pydantic-to-pyarrow maps no time-zone-aware type, and a review time needs its zone.
    reviewed_at: str | None = Field(None, description="When the reviewer decided, ISO 8601 with zone")
    task_id: int | None = Field(None, description="The annotation tool's task id")
