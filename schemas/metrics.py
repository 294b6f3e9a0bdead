"""The evaluation's models: the synonym-grouping reply, the evaluate configuration, and the report.

Like every other schema in the engine, the report's JSON and the grouping reply's `response_format`
come from these pydantic models (metrics/ fills them, metrics/report.py renders them).
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.config import RoleConfig, _FileSource  # the engine config's TOML/YAML source: both read files alike
from schemas.replies import Reply, Word

SYNONYM_PROMPT = "synonym_groups"


class SynonymGroupsReply(Reply):
    """The authors asked for "a list containing multiple lists": one list per meaning, its first word names it.

    Bounds keep constrained decoding finite (a model cannot list forever); a clip's label union is
    a handful of words, far inside them."""

    groups: list[Annotated[list[Word], Field(max_length=12)]] = Field(
        max_length=16, description="Groups of emotion words with the same meaning; the first word names the group"
    )


class EvaluateConfig(BaseSettings):
    """`emer-coarse evaluate --config FILE`: the optional synonym-grouping role and where its cache lives.

    TOML or YAML like the engine's config; `EMER_EVAL_*` variables override (nested with `__`).
    """

    model_config = SettingsConfigDict(env_prefix="EMER_EVAL_", env_nested_delimiter="__", extra="forbid")

    synonyms: RoleConfig | None = Field(
        None, description="The LLM that groups each clip's labels into synonyms (the authors used GPT-3.5)"
    )
    state_dir: Path | None = Field(None, description="The per-clip grouping cache; default: <out>/.state")

    @field_validator("synonyms", mode="before")
    @classmethod
    def _default_prompt(cls, value: Any) -> Any:
        # The role has one job and one prompt: naming it in every config file would only invite typos.
        if isinstance(value, dict) and not value.get("prompt"):
            return {**value, "prompt": SYNONYM_PROMPT}
        return value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return (init_settings, env_settings, _FileSource(settings_cls, _eval_config_file.get()))

    @classmethod
    def from_file(cls, path: Path | None) -> EvaluateConfig:
        token = _eval_config_file.set(Path(path) if path else None)
        try:
            return cls()
        finally:
            _eval_config_file.reset(token)


_eval_config_file: ContextVar[Path | None] = ContextVar("emer_eval_config_file", default=None)


class WheelClipScore(BaseModel):
    """One clip at one wheel level, averaged over the wheels that scored it."""

    precision: float
    recall: float
    wheels: int = Field(description="Wheels whose mapping left the clip's gold non-empty")


Language = Literal["en", "zh"]


class LanguageClipScore(BaseModel):
    """One clip's labels read from its description in one language, scored against the gold."""

    pred: list[str] = Field(description="Labels read from the description (English base words)")
    described: bool = Field(description="The prediction has a description in this language (else scored as empty)")
    accuracy_s: float | None = None
    recall_s: float | None = None


class ClipScore(BaseModel):
    name: str
    gold: list[str]
    pred: list[str]
    prediction_missing: bool = Field(
        False, description="The clip is in the gold file but has no prediction: scored as an empty prediction"
    )
    scored: bool = Field(
        description="False when the gold is empty: such clips are skipped, as the authors' wheel metric does"
    )
    accuracy_s: float | None = None
    recall_s: float | None = None
    groups_source: str = Field(
        description="Where this clip's synonym groups came from: file, llm, cache, lexicon or none"
    )
    wheel: dict[Literal["level1", "level2"], WheelClipScore] = Field(default_factory=dict)
    by_language: dict[Language, LanguageClipScore] = Field(
        default_factory=dict, description="The EMER metric on labels read from the description in each language"
    )


class EmerSummary(BaseModel):
    """The EMER / MER2024 open-vocabulary metric over a corpus: means over the scored clips."""

    avg: float = Field(description="(Accuracy_s + Recall_s) / 2")
    accuracy_s: float
    recall_s: float
    clips: int = Field(description="Clips scored")
    skipped: int = Field(description="Clips with an empty gold set (not scored)")


class LanguageScore(BaseModel):
    """The EMER metric on labels read from the English or the Chinese description, against the same gold labels
    (AffectGPT's Table 2 reports both languages)."""

    language: Language
    labels_from: str = Field(description="How the labels were read from the descriptions, in words")
    groups: str = Field(description="How synonyms were grouped for this score, in words")
    emer: EmerSummary
    described: int = Field(description="Gold clips whose prediction has a description in this language")


class WheelScore(BaseModel):
    wheel: str
    level: Literal["level1", "level2"]
    precision: float
    recall: float
    f1: float = Field(description="2PR/(P+R) of the averaged precision and recall; 0 when both are 0")
    clips: int = Field(description="Clips whose mapped gold is non-empty on this wheel")


class WheelSummary(BaseModel):
    """The emotion-wheel metric (OV-MER onward): F1 per wheel, averaged over the wheels."""

    level1_f1: float
    level2_f1: float
    level1_precision: float
    level1_recall: float
    level2_precision: float
    level2_recall: float
    source: str = Field(description="The resources read: the .npz, or the spreadsheets' folder")
    per_wheel: list[WheelScore]


class EvaluateReport(BaseModel):
    predictions: str = Field(description="What was evaluated: a build output folder or a predictions CSV")
    gold: str
    groups: str = Field(description="How synonyms were grouped, in words")
    model_calls: int = Field(0, description="Grouping requests sent to the model in this run (cache hits excluded)")
    grouping_errors: list[str] = Field(
        default_factory=list, description="Clips whose grouping request failed, and why (they fell back)"
    )
    input_errors: list[str] = Field(
        default_factory=list, description="Label cells that could not be read, with file and line (not scored)"
    )
    missing_predictions: int = Field(0, description="Gold clips without a prediction (scored as empty predictions)")
    extra_predictions: int = Field(0, description="Predicted clips that are not in the gold file (ignored)")
    emer: EmerSummary
    wheel: WheelSummary | None = None
    languages: list[LanguageScore] = Field(
        default_factory=list,
        description="The EMER metric on labels read from each language's description, when the predictions have them",
    )
    clips: list[ClipScore]
    files: dict[str, str] = Field(default_factory=dict, description="The report's files: json, markdown, plot")
