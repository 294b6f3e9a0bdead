"""What every model-backed stage shares: a role client and turning answers into an outcome."""

from __future__ import annotations

from annotators.client import Answer, RoleClient
from schemas.stage import StageOutcome


class ModelStage:
    name: str

    def __init__(self, client: RoleClient) -> None:
        self.client = client

    @property
    def config_hash(self) -> str:
        return self.client.config_hash


def outcome_of(stage: str, answers: dict[str, Answer], value: dict | None) -> StageOutcome:
    """One outcome from one or more answers: ok only when every answer is.

    Provenance names the stage, not the role: one role (e.g. translation) can serve two stages."""
    failed = {key: a for key, a in answers.items() if not a.ok}
    return StageOutcome(
        value=value,
        calls=[a.call.model_copy(update={"stage": stage}) for a in answers.values()],
        error="; ".join(f"{key}: {a.error}" for key, a in failed.items()) or None,
        raw=next((a.raw for a in failed.values() if a.raw), None),
        transient=any(a.transient for a in failed.values()),
    )
