"""One clip through every stage, each stage's outcome checkpointed the moment it is known.

Clips flow independently (no barrier between stages), so the servers see a steady mix of work, and
a stage's checkpoint key includes its inputs: a changed upstream answer re-runs what depends on it.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Awaitable, Callable

from flows.checkpoint import Checkpoint
from flows.stages.base import ModelStage
from flows.stages.clues import AudioClueStage, VisualClueStage, clue_text
from flows.stages.disambiguation import DisambiguationStage
from flows.stages.labels import LabelsStage
from flows.stages.media_prep import MediaPrep, decode_error_message
from flows.stages.translation import TranslationStage
from schemas.config import stable_hash
from schemas.manifest import ClipRecord, ClipStatus
from schemas.media import PreparedMedia
from schemas.row import ClueSet, CoarseRow, StageError
from schemas.stage import StageOutcome


class ClipPipeline:
    def __init__(
        self,
        checkpoint: Checkpoint,
        media: MediaPrep,
        audio_clue: AudioClueStage,
        visual_clue: VisualClueStage,
        subtitle_translation: TranslationStage,
        disambiguation: DisambiguationStage,
        translation: TranslationStage,
        labels: LabelsStage,
    ) -> None:
        self.checkpoint, self.media = checkpoint, media
        self.audio_clue, self.visual_clue = audio_clue, visual_clue
        self.subtitle_translation, self.disambiguation = subtitle_translation, disambiguation
        self.translation, self.labels = translation, labels
        self.model_calls = 0  # requests this run actually sent (checkpoint hits excluded)

    async def _step(self, stage: ModelStage, record: ClipRecord, inputs: object, run: Callable[[], Awaitable[StageOutcome]]) -> StageOutcome:
        key = f"{stage.config_hash}:{stable_hash(inputs)}"
        cached = await asyncio.to_thread(self.checkpoint.get, stage.name, key, record.sha256)
        if cached is not None:
            return StageOutcome.model_validate(cached)
        try:
            outcome = await run()
        except Exception as exc:  # a bug or bad media must cost one clip, never the batch
            outcome = StageOutcome(error=f"{type(exc).__name__}: {exc}", transient=True)
            traceback.print_exc()
        self.model_calls += sum(c.attempts for c in outcome.calls)
        if not outcome.transient:
            await asyncio.to_thread(self.checkpoint.put, stage.name, key, record.sha256, outcome.model_dump(mode="json"), outcome.ok)
        return outcome

    async def _prepare_media(self, record: ClipRecord) -> tuple[PreparedMedia | None, str | None]:
        """Media from the cache, or a decode; a file that cannot be decoded is remembered as such
        (keyed by content), so a re-run neither decodes it again nor words its error differently."""
        failed = await asyncio.to_thread(self.checkpoint.get, "media_prep", self.media.config_hash, record.sha256)
        if failed is not None:
            return None, failed["error"]
        try:
            return await self.media.prepare(record), None
        except Exception as exc:
            message = decode_error_message(exc)
            await asyncio.to_thread(self.checkpoint.put, "media_prep", self.media.config_hash, record.sha256, {"error": message}, False)
            return None, message

    async def run(self, record: ClipRecord) -> CoarseRow:
        row = CoarseRow(
            name=record.name,
            sha256=record.sha256,
            duration=record.duration,
            clip_status=record.status.value,
            subtitle_chinese=record.subtitles.chinese,
            subtitle_english=record.subtitles.english,
        )
        if not record.processable:
            row.errors.append(StageError(stage="ingest", message=record.error or record.status.value))
            return row
        if record.status is ClipStatus.silent:
            row.errors.append(StageError(stage="ingest", message=f"audio clue skipped: {record.error}"))
        media, message = await self._prepare_media(record)
        if media is None:
            row.errors.append(StageError(stage="media_prep", message=message))
            # Corruption ffprobe cannot see shows up here: the manifest (written after annotation) says so.
            record.status, record.error = ClipStatus.invalid, message
            row.clip_status = record.status.value
            return row

        def keep(stage: str, outcome: StageOutcome) -> StageOutcome:
            row.provenance.extend(outcome.calls)
            if not outcome.ok:
                row.errors.append(StageError(stage=stage, message=outcome.error or "no value", raw=outcome.raw))
            return outcome

        subtitle = record.subtitles.english
        if not subtitle and record.subtitles.chinese:
            chinese = record.subtitles.chinese
            out = keep("subtitle_translation", await self._step(self.subtitle_translation, record, chinese, lambda: self.subtitle_translation.run(chinese)))
            subtitle = out.value["translation"] if out.ok else chinese  # the Chinese text still informs the LLM

        visual = self._step(self.visual_clue, record, subtitle, lambda: self.visual_clue.run(record, media, subtitle))
        if record.status is ClipStatus.ok and media.wav:
            audio = self._step(self.audio_clue, record, subtitle, lambda: self.audio_clue.run(record, media, subtitle))
            visual_out, audio_out = await asyncio.gather(visual, audio)
            keep("audio_clue", audio_out)
            row.audio_clue = ClueSet.model_validate(audio_out.value) if audio_out.value else None
        else:
            visual_out, audio_out = await visual, None
        keep("visual_clue", visual_out)
        row.visual_clue = ClueSet.model_validate(visual_out.value) if visual_out.value else None
        if row.audio_clue is None and row.visual_clue is None:
            row.errors.append(StageError(stage="disambiguation", message="skipped: no clue to disambiguate"))
            return row

        audio_text = clue_text(row.audio_clue, "(no usable audio: " + (record.error or "audio clue failed") + ")")
        visual_text = clue_text(row.visual_clue, "(no visual clue available)")
        inputs = [subtitle, audio_text, visual_text]
        desc = keep("disambiguation", await self._step(self.disambiguation, record, inputs, lambda: self.disambiguation.run(subtitle, audio_text, visual_text)))
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
        needed_audio = record.status is ClipStatus.ok
        row.complete = not [e for e in row.errors if e.stage != "ingest"] and (row.audio_clue is not None or not needed_audio)
        return row
