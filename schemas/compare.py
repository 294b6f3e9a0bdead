"""The line-up comparison's models: what each line-up scored on the gold clips and what it cost per clip.

`emer-coarse compare` (flows/compare.py) fills them; metrics/leaderboard.py renders them as the paper's table
(AffectGPT's Table 1: a row per line-up, the metric columns, the best in bold), JSON and a bar chart.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.metrics import EmerSummary, WheelSummary


class StageCost(BaseModel):
    """One stage of a line-up over the gold clips, from its rows' provenance and the runs' statistics."""

    answers: int = Field(0, description="Clips the stage answered (or failed on) for this line-up")
    requests: int = Field(0, description="Questions sent to a model for those answers")
    attempts: int = Field(0, description="HTTP requests, re-asks included")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float | None = Field(
        None, description="Model seconds for those answers (mean per answer where it was measured); None: unmeasured"
    )


class LineupCost(BaseModel):
    """What the line-up costs per clip, whichever run asked: a stage it shares with another line-up of the
    comparison was asked once, and counts in full for each line-up that uses it."""

    clips: int = Field(description="Gold clips the line-up was built over")
    requests: float = Field(description="Questions sent to a model, per clip")
    attempts: float = Field(description="HTTP requests (re-asks included), per clip")
    tokens: float = Field(description="Prompt + completion tokens, per clip")
    prompt_tokens: float
    completion_tokens: float
    seconds: float | None = Field(
        None, description="Model seconds per clip (per-stage wall seconds summed over clips: they overlap)"
    )
    seconds_complete: bool = Field(True, description="False when a stage's seconds were never measured")
    asked_now: int = Field(0, description="HTTP requests this comparison run made for the line-up")
    stages: dict[str, StageCost] = Field(default_factory=dict)


class LineupResult(BaseModel):
    name: str = Field(description="The line-up's file stem")
    config: str = Field(description="The line-up's configuration file")
    models: dict[str, list[str]] = Field(
        default_factory=dict, description="Role -> the models (or `signals`) that answer it"
    )
    differs_from: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Other line-up -> the roles (and `media`) configured otherwise (one: an ablation)",
    )
    emer: dict[str, EmerSummary] = Field(
        default_factory=dict,
        description="EMER metric per reading: `labels` (the labels stage's), `en` and `zh` (labels read from each "
        "language's description, when the evaluation reads them)",
    )
    wheel: WheelSummary | None = None
    clips: int = Field(0, description="Gold clips the line-up was built over")
    complete: int = Field(0, description="Clips every stage answered (scored); the others score as missing")
    train: int = Field(0, description="Complete clips that also passed every quality gate")
    failed: int = Field(0, description="Clips without a complete row")
    cost: LineupCost | None = None
    canaries: dict[str, int] = Field(
        default_factory=dict, description="Modality canaries of the line-up's build (when enabled): status -> count"
    )
    error: str | None = Field(
        None, description="Why the line-up has no scores: it could not run, or no clip completed"
    )
    files: dict[str, str] = Field(default_factory=dict, description="build, predictions, evaluation, config")


class Leaderboard(BaseModel):
    corpus: str
    gold: str
    clips: int = Field(description="Gold clips found in the corpus (each line-up is built over these only)")
    gold_not_in_corpus: list[str] = Field(default_factory=list, description="Gold clips with no clip in the corpus")
    ranked_by: str = Field(description="The column the line-ups are ranked by")
    best: str | None = Field(None, description="The line-up that scores best; None when none could be scored")
    verdict: str = Field(description="Which line-up scores best and at what cost, in words")
    groups: str = Field("", description="How synonyms were grouped (the evaluation's words)")
    lineups: list[LineupResult] = Field(description="Best first; line-ups without scores last")
    files: dict[str, str] = Field(default_factory=dict)
