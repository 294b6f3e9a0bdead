"""One clip through every stage, each stage's outcome checkpointed the moment it is known.

Clips flow independently (no barrier between stages), so the servers see a steady mix of work, and
a stage's checkpoint key includes its inputs: a changed upstream answer re-runs what depends on it.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import Awaitable, Callable

from runtime.checkpoint import Checkpoint
from stages.base import ModelStage
from stages.clues import AudioClueStage, VisualClueStage, clue_text
from stages.disambiguation import DisambiguationStage
from stages.labels import LabelsStage
from stages.media_prep import MediaPrep, UndecodableMedia
from stages.signals import MeasureSignalsStage
from stages.translation import TranslationStage
from schemas.config import stable_hash
from schemas.manifest import ClipRecord, ClipStatus
from schemas.media import PreparedMedia
from schemas.row import ClueSet, CoarseRow, StageError
from schemas.signals import ClipSignals
from schemas.stage import StageOutcome

log = logging.getLogger(__name__)


class _Calls:
    n = 0


# Requests are counted per batch: clips of one batch run as tasks that inherit this context.
_calls: ContextVar[_Calls] = ContextVar("emer_batch_calls", default=_Calls())


def count_calls() -> _Calls:
    """Start counting the requests made by the coroutines spawned from the current context."""
    counter = _Calls()
    _calls.set(counter)
    return counter


class ClipPipeline:
    def __init__(
        self,
        checkpoint: Checkpoint,
        media: MediaPrep,
        signals: MeasureSignalsStage,
        audio_clue: AudioClueStage,
        visual_clue: VisualClueStage,
        subtitle_translation: TranslationStage,
        disambiguation: DisambiguationStage,
        translation: TranslationStage,
        labels: LabelsStage,
        max_clips_in_flight: int = 256,
    ) -> None:
        self.checkpoint, self.media, self.signals = checkpoint, media, signals
        self.audio_clue, self.visual_clue = audio_clue, visual_clue
        self.subtitle_translation, self.disambiguation = subtitle_translation, disambiguation
        self.translation, self.labels = translation, labels
        # Bounds the media (base64 frames and audio) held at once across all batches in flight.
        self._in_flight = asyncio.Semaphore(max_clips_in_flight)
        self._pending: dict[tuple[str, str, str], asyncio.Future[StageOutcome]] = {}

    async def _step(self, stage: ModelStage | MeasureSignalsStage, record: ClipRecord, inputs: object, run: Callable[[], Awaitable[StageOutcome]]) -> StageOutcome:
        key = f"{stage.config_hash}:{stable_hash(inputs)}"
        cached = self.checkpoint.get(stage.name, key, record.sha256)
        if cached is not None:
            return StageOutcome.model_validate(cached)
        # Single flight: the same question about the same content (a duplicated clip) asked while it
        # is already being answered waits for that answer, as a later run would read it from the
        # checkpoint; asking twice would cost a call and leave one row disagreeing with the store.
        flight = (stage.name, key, record.sha256)
        if (pending := self._pending.get(flight)) is not None:
            await asyncio.wait([pending])
            if not pending.cancelled():  # the owner only ever sets a result or cancels
                return pending.result()
            return await self._step(stage, record, inputs, run)  # the first asker failed: ask ourselves
        future = self._pending[flight] = asyncio.get_running_loop().create_future()
        try:
            outcome = await run()
            _calls.get().n += sum(c.attempts for c in outcome.calls)
            if not outcome.transient:
                self.checkpoint.put(stage.name, key, record.sha256, outcome.model_dump(mode="json"), outcome.ok)
            future.set_result(outcome)
            return outcome
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[flight]

    async def _prepare_media(self, record: ClipRecord, with_audio: bool) -> tuple[PreparedMedia | None, str | None]:
        """Media from the cache, or a decode. A file that cannot be decoded is remembered as such
        (keyed by content), so a re-run neither decodes it again nor words its error differently;
        any other failure (disk full, a pool shut down) is left to the next run."""
        known = self.checkpoint.get("media_prep", self.media.frames_hash + self.media.audio_hash, record.sha256)
        if known is not None:
            return None, known["error"]
        try:
            return await self.media.prepare(record, with_audio), None
        except UndecodableMedia as exc:
            self.checkpoint.put("media_prep", self.media.frames_hash + self.media.audio_hash, record.sha256, {"error": str(exc)}, False)
            return None, str(exc)

    async def run_safely(self, record: ClipRecord) -> CoarseRow:
        """`run`, with any unexpected error turned into this clip's failure: a bad clip must never
        cost the batch (nothing of a failed clip is checkpointed, so the next run retries it)."""
        async with self._in_flight:
            try:
                return await self.run(record)
            except Exception as exc:
                log.exception("clip %s failed", record.name)
                row = _new_row(record)
                row.errors.append(StageError(stage="internal", message=f"{type(exc).__name__}: {exc}"))
                return row

    async def run(self, record: ClipRecord) -> CoarseRow:
        row = _new_row(record)
        if not record.processable:
            row.errors.append(StageError(stage="ingest", message=record.error or record.status.value))
            return row
        hears = record.status is ClipStatus.ok
        media, problem = await self._prepare_media(record, with_audio=hears)
        if media is None:
            row.errors.append(StageError(stage="media_prep", message=problem))
            # Corruption ffprobe could not see: the manifest is updated from the row.
            row.clip_status, row.clip_error = ClipStatus.invalid.value, problem
            return row

        def keep(stage: str, outcome: StageOutcome) -> StageOutcome:
            row.provenance.extend(outcome.calls)
            if not outcome.ok:
                row.errors.append(StageError(stage=stage, message=outcome.error or "no value", raw=outcome.raw))
            return outcome

        measured = keep("signals", await self._step(self.signals, record, [record.audio_sha256, hears], lambda: self.signals.run(media)))
        row.signals = signals = ClipSignals.model_validate(measured.value) if measured.ok else None

        subtitle = record.subtitles.english
        if not subtitle and record.subtitles.chinese:
            chinese = record.subtitles.chinese
            out = keep("subtitle_translation", await self._step(self.subtitle_translation, record, chinese, lambda: self.subtitle_translation.run(chinese)))
            if out.transient:
                return row  # the next run retries; downstream answers would be built on a gap
            row.subtitle_english_translated = out.value["translation"] if out.ok else None
            subtitle = row.subtitle_english_translated or chinese  # the Chinese text still informs the LLM

        visual = self._step(self.visual_clue, record, subtitle, lambda: self.visual_clue.run(record, media, subtitle, signals=signals))
        if hears:
            audio = self._step(self.audio_clue, record, [subtitle, record.audio_sha256], lambda: self.audio_clue.run(record, media, subtitle, signals=signals))
            visual_out, audio_out = await asyncio.gather(visual, audio)
            keep("audio_clue", audio_out)
            row.audio_clue = ClueSet.model_validate(audio_out.value) if audio_out.value else None
        else:
            row.errors.append(StageError(stage="audio_clue", message=f"skipped: {record.error}"))
            visual_out, audio_out = await visual, None
        keep("visual_clue", visual_out)
        row.visual_clue = ClueSet.model_validate(visual_out.value) if visual_out.value else None
        if visual_out.transient or (audio_out is not None and audio_out.transient):
            return row
        if row.audio_clue is None and row.visual_clue is None:
            row.errors.append(StageError(stage="disambiguation", message="skipped: no clue to disambiguate"))
            return row

        audio_text = clue_text(row.audio_clue, "(no usable audio: " + (record.error or "the audio clue failed") + ")")
        visual_text = clue_text(row.visual_clue, "(no visual clue available)")
        inputs = [subtitle, audio_text, visual_text]
        desc = keep("disambiguation", await self._step(self.disambiguation, record, inputs, lambda: self.disambiguation.run(subtitle, audio_text, visual_text, audio=row.audio_clue, visual=row.visual_clue, signals=signals)))
        if not desc.ok:
            return row
        row.subtitle_analysis, row.description_en = desc.value["subtitle_analysis"], desc.value["description"]
        english = row.description_en
        zh, labels = await asyncio.gather(
            self._step(self.translation, record, english, lambda: self.translation.run(english)),
            self._step(self.labels, record, english, lambda: self.labels.run(english)),
        )
        if keep("translation", zh).ok:
            row.description_zh = zh.value["translation"]
        if keep("labels", labels).ok:
            row.labels = labels.value["labels"]
        # A silent clip is complete without an audio clue; every other failure leaves it incomplete.
        skipped_audio = [e for e in row.errors if e.stage == "audio_clue" and e.message.startswith("skipped:")]
        row.complete = len(row.errors) == len(skipped_audio) and (row.audio_clue is not None or not hears)
        return row


def _new_row(record: ClipRecord) -> CoarseRow:
    return CoarseRow(
        name=record.name,
        sha256=record.sha256,
        duration=record.duration,
        clip_status=record.status.value,
        clip_error=record.error,
        subtitle_chinese=record.subtitles.chinese,
        subtitle_english=record.subtitles.english,
    )
