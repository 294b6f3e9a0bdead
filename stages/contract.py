"""The stage contract: a stage declares what it asks; a backend answers it.

In the spirit of distilabel's Task/LLM split and NeMo Curator's declared inputs and outputs. A stage
is the question: the row fields it reads (a typed `StageInputs` model), the reply it expects (a pydantic
`Reply`), the row fields it writes, the prompt it is asked with, the media it looks at, and how the
replies become its value. A backend is whoever answers (backends/): a served model, the measuring
annotators, and more. The checkpoint key of an answer is derived from the declaration
(`checkpoint_key`), so what a stage depends on is stated once, where it is read, never listed by hand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from schemas.config import stable_hash
from schemas.manifest import ClipRecord
from schemas.media import PreparedMedia
from schemas.replies import Reply
from schemas.row import CoarseRow, StageExtra
from schemas.signals import ClipSignals, CorpusNorms
from schemas.stage import StageOutcome

Medium = Literal["audio", "frames"]


class StageInputs(BaseModel):
    """What a stage reads from the row, typed. Its values are part of the stage's checkpoint key.

    By default every field is read from the row attribute of the same name; a stage whose input is
    derived (the clue a disambiguation reads is one of the two asked) overrides `read`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def read(cls, row: CoarseRow) -> StageInputs:
        return cls.model_validate({name: getattr(row, name) for name in cls.model_fields})


In = TypeVar("In", bound=StageInputs)


@dataclass(frozen=True)
class Question:
    """One ask of a stage: a prompt template filled with values. A stage may ask several (the clues
    are asked without and with the subtitle); its `combine` makes one value of the replies."""

    key: str
    template: str
    values: dict[str, str]


class Stage(Generic[In]):
    """One declaration per stage. Subclasses set the class attributes and, where needed, override
    `questions`, `combine` and `write`."""

    name: ClassVar[str]  # checkpoint, provenance and statistics name
    role: ClassVar[str]  # the configured role whose backend answers it (one role may serve two stages)
    inputs: ClassVar[type[StageInputs]]
    reply: ClassVar[type[BaseModel]]
    writes: ClassVar[tuple[str, ...]]  # row fields; a name CoarseRow lacks goes to `row.extra`
    prompt: ClassVar[str | None] = None  # prompt id (annotators/prompts/<id>.toml); None: no prompt
    media: ClassVar[tuple[Medium, ...]] = ()
    # The stage's own logic (reading, combining, writing): bump when it changes what an answer means.
    version: ClassVar[str] = "1"

    def read(self, row: CoarseRow) -> In:
        return self.inputs.read(row)  # type: ignore[return-value]

    def questions(self, inputs: In) -> list[Question]:
        raise NotImplementedError(f"{type(self).__name__} asks no model: a backend of its own answers it")

    def combine(self, inputs: In, replies: dict[str, Reply]) -> dict[str, Any] | None:
        """The stage's value from the replies that validated (keyed by question); None: nothing usable.
        The default: a single question, its reply as is."""
        if not replies:
            return None
        [reply] = replies.values()
        return reply.model_dump(mode="json")

    def write(self, row: CoarseRow, value: dict[str, Any]) -> None:
        """Put the value into the declared row fields (by default the value's keys of the same names)."""
        for name in self.writes:
            write_field(row, self.name, name, value.get(name))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None) and not hasattr(cls, "role"):
            cls.role = cls.name


def write_field(row: CoarseRow, stage: str, name: str, value: Any) -> None:
    """A declared output into the row: a CoarseRow field by name, anything else into `extra`."""
    if name in CoarseRow.model_fields:
        setattr(row, name, value)
        return
    row.extra = [e for e in row.extra if not (e.stage == stage and e.field == name)]
    row.extra.append(StageExtra.of(stage, name, value))


class Backend:
    """Whoever answers stages. `identity` is everything its answers depend on besides the stage's
    inputs (model, prompt text and version, sampling, media transport): it enters the checkpoint key."""

    kind: ClassVar[str]

    def identity(self, stage: Stage) -> dict[str, Any]:
        raise NotImplementedError

    def identity_hash(self, stage: Stage) -> str:
        """`identity` hashed, once per stage: it holds the reply's JSON schema, which costs more to build
        and serialise than the rest of a step (the per-clip key is derived on every step)."""
        cache = self.__dict__.setdefault("_identity_hashes", {})
        if stage.name not in cache:
            cache[stage.name] = stable_hash(self.identity(stage))
        return cache[stage.name]

    def reads_media(self, stage: Stage) -> bool:
        """Whether the answer depends on the media files themselves (then their settings enter the key)."""
        return False

    def reads_measurements(self, stage: Stage) -> tuple[str, ...]:
        """Which of the clip's measurements ("audio", "visual", and "corpus": the corpus's acoustic norms) the
        answer depends on: their hashes enter the key."""
        return ()

    def reads_clip_name(self, stage: Stage) -> bool:
        """Whether the answer depends on the clip's name, not only its content (answers looked up by name,
        such as imported outputs): two clips with the same content then keep apart answers."""
        return False

    def lineup_entry(self) -> dict[str, Any]:
        """What the dataset card and the line-up fingerprint say about this backend."""
        raise NotImplementedError

    async def answer(self, stage: Stage, inputs: StageInputs, clip: ClipContext) -> StageOutcome:
        raise NotImplementedError


@dataclass
class ClipContext:
    """What a backend may look at besides the inputs: the clip, its prepared media, its measurements."""

    record: ClipRecord
    media: PreparedMedia
    media_keys: dict[str, Any]  # medium -> identity of the prepared file(s): settings hash, source hash
    signals: ClipSignals | None = None
    # "audio"/"visual" -> hash, once measured; "corpus" -> the norms' hash (engine/pipeline.py hashes them once)
    measurement_hashes: dict[str, str | None] = field(default_factory=dict)
    norms: CorpusNorms | None = None  # the corpus's acoustic norms (annotators/signals/acoustics.py)


def checkpoint_key(stage: Stage, backend: Backend, inputs: StageInputs, clip: ClipContext) -> str:
    """Everything an answer depends on, and nothing else: the stage and its version, the backend's
    identity, the declared inputs' values, the media settings when the backend reads the media, and
    the measurements' hash when it reads them, the corpus norms' among them when it reads "corpus" (so a
    grown corpus moves exactly those keys). (The clip's content hash is the checkpoint's own column.)"""
    parts: dict[str, Any] = {"stage": [stage.name, stage.version], "backend": backend.identity_hash(stage)}
    if backend.reads_media(stage):
        parts["media"] = {medium: clip.media_keys[medium] for medium in stage.media}
    if read := backend.reads_measurements(stage):
        parts["measurements"] = {part: clip.measurement_hashes.get(part) for part in read}
    if backend.reads_clip_name(stage):
        parts["name"] = clip.record.name
    # The inputs as pydantic-core serialises them (field order fixed by the model): derived on every step of
    # every clip, this was the engine's own largest cost per step as a dict through json.dumps.
    blob = inputs.model_dump_json().encode() + b"\0" + json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
