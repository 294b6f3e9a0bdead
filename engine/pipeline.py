"""One clip through the stages in the method's order, each outcome checkpointed the moment it is known.

Clips flow independently (no barrier between stages), so the servers see a steady mix of work. The
order is the method's, written out where it branches (a silent clip has no audio clue; a Chinese-only
subtitle is translated first); stages are taken by name, each bound to the backend that answers it,
and each step derives its checkpoint key from the stage's declaration (stages/contract.py).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
import time
from dataclasses import dataclass

from runtime.checkpoint import Checkpoint
from runtime.stats import stat_update
from schemas.config import stable_hash
from schemas.errors import UserError
from schemas.manifest import ClipRecord, ClipStatus
from schemas.media import PreparedMedia
from schemas.row import CoarseRow, StageError
from schemas.signals import CorpusNorms
from schemas.stage import StageOutcome
from stages.contract import Backend, ClipContext, Stage, checkpoint_key
from stages.media_prep import MediaPrep, UndecodableMedia

log = logging.getLogger(__name__)

# Stages that read the finished English description run side by side; a line-up's `extra_stages`
# are appended here (they may read anything written before them).
DESCRIPTION_READERS = ("translation", "labels")


# OS errors that are about the machine's storage, not about a clip: every clip after this one would
# meet them too, so the run stops instead of failing clip after clip.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}
STORAGE_SQLITE_CODES = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY}


class StorageFailure(UserError):
    """The disk is full (or read-only, or failing) under the media cache or the checkpoint. Nothing the
    failure touched was cached or checkpointed, so the run after the user frees space resumes cleanly.
    Raised out of the batch (and the flow): the CLI shows the message, one line, and exits non-zero."""


def storage_failure(exc: BaseException) -> StorageFailure | None:
    """`exc` as a StorageFailure when it is the storage's fault (None otherwise)."""
    if isinstance(exc, StorageFailure):
        return exc
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        where = f" writing {exc.filename}" if exc.filename else ""
        reason = exc.strerror or str(exc)
    elif isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) in STORAGE_SQLITE_CODES:
        where, reason = " writing the checkpoint", str(exc)
    else:
        return None
    return StorageFailure(
        f"stopped: {reason}{where}. Free space (or fix the disk) and run the same command again: "
        "finished work is kept and the run resumes where it stopped."
    )


@dataclass(frozen=True)
class BoundStage:
    stage: Stage
    backend: Backend


class ClipPipeline:
    def __init__(
        self,
        checkpoint: Checkpoint,
        media: MediaPrep,
        stages: dict[str, BoundStage],
        description_readers: tuple[str, ...] = DESCRIPTION_READERS,
        max_clips_in_flight: int = 256,
        flights: dict | None = None,
    ) -> None:
        self.checkpoint, self.media, self.stages = checkpoint, media, stages
        self.description_readers = description_readers
        # Bounds the media (base64 frames and audio) held at once across all batches in flight.
        self._in_flight = asyncio.Semaphore(max_clips_in_flight)
        # `flights`: another pipeline's over the same checkpoint (a second line-up's), so that a question both
        # ask about the same content at once is asked once.
        self._pending: dict[tuple[str, str, str], asyncio.Future[StageOutcome]] = {} if flights is None else flights
        # Once the storage failed, clips that start while others are still in flight stop at once (they
        # would fail the same way); when none is left in flight the next one tries again (a long-lived
        # Dask worker's engine outlives the run that filled the disk).
        self.stopped: StorageFailure | None = None
        self._running = 0
        self._last_norms: tuple[CorpusNorms, str] | None = None

    async def _ask(self, name: str, row: CoarseRow, clip: ClipContext) -> StageOutcome:
        """The stage's outcome for this clip: from the checkpoint, or answered now and checkpointed."""
        bound = self.stages[name]
        inputs = bound.stage.read(row)
        key = checkpoint_key(bound.stage, bound.backend, inputs, clip)
        cached = self.checkpoint.get(name, key, row.sha256)
        if cached is not None:
            stat_update(name, checkpoint_hits=1)
            return StageOutcome.model_validate(cached)
        # Single flight: the same question about the same content (a duplicated clip) asked while it
        # is already being answered waits for that answer, as a later run would read it from the
        # checkpoint; asking twice would cost a call and leave one row disagreeing with the store.
        flight = (name, key, row.sha256)
        if (pending := self._pending.get(flight)) is not None:
            await asyncio.wait([pending])
            if not pending.cancelled():  # the owner only ever sets a result or cancels
                stat_update(name, checkpoint_hits=1)
                return pending.result()
            return await self._ask(name, row, clip)  # the first asker failed: ask ourselves
        future = self._pending[flight] = asyncio.get_running_loop().create_future()
        try:
            started = time.monotonic()
            outcome = await bound.backend.answer(bound.stage, inputs, clip)
            _count(name, outcome, time.monotonic() - started)
            if not outcome.transient:
                self.checkpoint.put(name, key, row.sha256, outcome.model_dump(mode="json"), outcome.ok)
            future.set_result(outcome)
            return outcome
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[flight]

    def _norms_hash(self, norms: CorpusNorms | None) -> str | None:
        """Hashed once per norms object (every clip of a batch shares one), not on every clip."""
        if norms is None:
            return None
        if self._last_norms is None or self._last_norms[0] is not norms:
            self._last_norms = (norms, stable_hash(norms.model_dump(mode="json")))
        return self._last_norms[1]

    def _keep(self, name: str, row: CoarseRow, outcome: StageOutcome) -> StageOutcome:
        """The outcome onto the row: its provenance, its error, and its value into the declared fields.
        Applied in the pipeline's order (not as answers arrive), so rows are the same on every run."""
        row.provenance.extend(outcome.calls)
        if not outcome.ok:
            row.errors.append(StageError(stage=name, message=outcome.error or "no value", raw=outcome.raw))
        if outcome.value is not None:  # a clue asked twice keeps the half that answered
            self.stages[name].stage.write(row, outcome.value)
        return outcome

    async def step(self, name: str, row: CoarseRow, clip: ClipContext) -> StageOutcome:
        """One stage for one clip: its outcome (checkpointed or answered now) kept on the row."""
        return self._keep(name, row, await self._ask(name, row, clip))

    async def _run_together(self, names: list[str], row: CoarseRow, clip: ClipContext) -> list[StageOutcome]:
        outcomes = await asyncio.gather(*(self._ask(n, row, clip) for n in names))
        return [self._keep(n, row, o) for n, o in zip(names, outcomes)]

    async def _prepare_media(self, record: ClipRecord, with_audio: bool) -> tuple[PreparedMedia | None, str | None]:
        """Media from the cache, or a decode. A file that cannot be decoded is remembered as such
        (keyed by content), so a re-run neither decodes it again nor words its error differently;
        any other failure (disk full, a pool shut down) is left to the next run: never checkpointed,
        and a full disk stops the run (StorageFailure)."""
        key = self.media.frames_hash + self.media.audio_hash
        known = self.checkpoint.get("media_prep", key, record.sha256)
        if known is not None:
            return None, known["error"]
        started = time.monotonic()
        try:
            return await self.media.prepare(record, with_audio), None
        except UndecodableMedia as exc:
            self.checkpoint.put("media_prep", key, record.sha256, {"error": str(exc)}, False)
            return None, str(exc)
        finally:
            stat_update("media_prep", seconds=time.monotonic() - started)

    async def run_safely(
        self, record: ClipRecord, norms: CorpusNorms | None = None, *, measure_only: bool = False
    ) -> CoarseRow:
        """`run` (or, `measure_only`, its media prep and measurements: the corpus pass that the norms are
        computed from), with any unexpected error turned into this clip's failure: a bad clip must never
        cost the batch (nothing of a failed clip is checkpointed, so the next run retries it). A
        failing disk is not the clip's: it is raised as StorageFailure, out of the batch."""
        async with self._in_flight:
            if self.stopped is not None:
                raise self.stopped
            self._running += 1
            try:
                if measure_only:
                    return (await self.measure(record))[0]
                return await self.run(record, norms)
            except Exception as exc:
                if (failure := storage_failure(exc)) is not None:
                    self.stopped = failure
                    raise failure from exc
                log.exception("clip %s failed", record.name)
                row = _new_row(record)
                row.errors.append(StageError(stage="internal", message=f"{type(exc).__name__}: {exc}"))
                return row
            finally:
                self._running -= 1
                if not self._running:
                    self.stopped = None

    async def measure(self, record: ClipRecord) -> tuple[CoarseRow, ClipContext | None]:
        """Media prep and the measurements: the row so far, and the clip's context (None when the clip
        cannot be measured; the row says why)."""
        row = _new_row(record)
        if not record.processable:
            row.errors.append(StageError(stage="ingest", message=record.error or record.status.value))
            return row, None
        hears = record.status is ClipStatus.ok
        media, problem = await self._prepare_media(record, with_audio=hears)
        if media is None:
            row.errors.append(StageError(stage="media_prep", message=problem))
            # Corruption ffprobe could not see: the manifest is updated from the row.
            row.clip_status, row.clip_error = ClipStatus.invalid.value, problem
            return row, None
        clip = ClipContext(record=record, media=media, media_keys=self.media.keys(record))

        measured = await self.step("signals", row, clip)
        clip.signals = row.signals
        # The active speaker is read with the picture: it is in the visual hash (it moves with the audio too).
        clip.measurement_hashes = {
            "audio": stable_hash(measured.value["audio"]) if measured.ok else None,
            "visual": stable_hash([measured.value["visual"], measured.value.get("active_speaker")])
            if measured.ok
            else None,
        }
        return row, clip

    async def run(self, record: ClipRecord, norms: CorpusNorms | None = None) -> CoarseRow:
        """`norms`: the corpus's acoustic norms (annotators/signals/acoustics.py), for the answers that read
        "corpus"; their hash enters those answers' keys, so a grown corpus re-answers just them."""
        row, clip = await self.measure(record)
        if clip is None:
            return row
        hears = record.status is ClipStatus.ok
        clip.norms = norms
        clip.measurement_hashes["corpus"] = self._norms_hash(norms)

        if not row.subtitle_english and row.subtitle_chinese:
            if (await self.step("subtitle_translation", row, clip)).transient:
                return row  # the next run retries; downstream answers would be built on a gap

        asked = ["visual_clue", "audio_clue"] if hears else ["visual_clue"]
        clues = dict(zip(asked, await asyncio.gather(*(self._ask(n, row, clip) for n in asked))))
        if not hears:
            row.errors.append(StageError(stage="audio_clue", message=f"skipped: {record.error}"))
        for name in ("audio_clue", "visual_clue"):
            if name in clues:
                self._keep(name, row, clues[name])
        if any(c.transient for c in clues.values()):
            return row
        if row.audio_clue is None and row.visual_clue is None:
            row.errors.append(StageError(stage="disambiguation", message="skipped: no clue to disambiguate"))
            return row

        if not (await self.step("disambiguation", row, clip)).ok:
            return row
        await self._run_together(list(self.description_readers), row, clip)
        # A silent clip is complete without an audio clue; every other failure leaves it incomplete.
        skipped_audio = [e for e in row.errors if e.stage == "audio_clue" and e.message.startswith("skipped:")]
        row.complete = len(row.errors) == len(skipped_audio) and (row.audio_clue is not None or not hears)
        return row


def _count(stage: str, outcome: StageOutcome, seconds: float) -> None:
    asked = [c for c in outcome.calls if c.attempts]
    stat_update(
        stage,
        runs=1,
        requests=len(asked),
        attempts=sum(c.attempts for c in asked),
        failures=0 if outcome.ok else 1,
        prompt_tokens=sum(c.prompt_tokens or 0 for c in asked),
        completion_tokens=sum(c.completion_tokens or 0 for c in asked),
        seconds=seconds,
    )


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
