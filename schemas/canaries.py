"""Modality canaries (engine/canaries.py): what a few generated clips showed about each role's use of its media."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, computed_field

from schemas.replies import Reply, Text


class CanaryStatus(StrEnum):
    passed = "passed"
    failed = "failed"
    skipped = "skipped"  # nothing to check: the role reads no media through a model, or is sent none


class TranscriptReply(Reply):
    """The audio canary's question: the words spoken in the recording."""

    transcript: Text = Field(description="What the speaker says, word for word (or that no speech is heard)")

    @classmethod
    def from_prose(cls, text: str) -> TranscriptReply:
        return cls(transcript=text)


class SceneReply(Reply):
    """The visual canaries' question: what the video shows, and whether a person is in it."""

    description: Text = Field(description="What is visible in the video")
    person_visible: bool | None = Field(description="Whether a person or a human face can be seen")

    @classmethod
    def from_prose(cls, text: str) -> SceneReply:
        return cls(description=text, person_visible=None)  # prose says it in words: read from the description


class CanaryResult(BaseModel):
    """One canary asked of one role."""

    role: str
    canary: str = Field(description="audio_words (say the spoken sentence), no_face (a clip with no face), face")
    status: CanaryStatus
    reason: str = Field(description="Why it passed, failed or was skipped, in words")
    answer: str | None = Field(None, description="What the role answered (shortened)")
    score: float | None = Field(None, description="audio_words: the share of the sentence's words heard")
    threshold: float | None = None
    model: str | None = None
    requests: int = Field(0, description="HTTP requests, re-asks included")
    prompt_tokens: int = 0
    completion_tokens: int = 0


class CanaryReport(BaseModel):
    """Every canary of a run, with the version of the canary set (data/canaries/canaries.toml)."""

    version: str
    results: list[CanaryResult] = Field(default_factory=list)

    @computed_field  # in build.json too: whether any canary failed, without reading every result
    @property
    def passed(self) -> bool:
        return not self.failed()

    def failed(self) -> list[CanaryResult]:
        return [r for r in self.results if r.status is CanaryStatus.failed]

    def lines(self) -> list[str]:
        """One line per canary, for the log."""
        return [f"canary {r.role}/{r.canary}: {r.status.value}: {r.reason}" for r in self.results]
