"""Push: the `review` split's rows (complete, held back by a gate) become tasks of a Label Studio project.

Idempotent: a row whose (name, sha256) is already a task of the project is not queued again, so a
push after every build queues only what is new; a clip whose content changed (new sha256) is queued
again, since a decision is about one content. A task already queued whose texts this engine now writes
differently (a task pushed by an older version) has its data brought up to date, so every task of the
project reads the same way. Clips are served by Label Studio from where the corpus keeps them
(`review.media`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from review import config, media
from review.label_studio import LabelStudio
from review.tasks import task_data
from schemas.manifest import ClipRecord
from schemas.row import CoarseRow

REVIEW_SPLIT = "review"
DEFAULT_PROJECT = config.DEFAULT_PROJECT
IMPORT_BATCH = 500

log = logging.getLogger(__name__)


@dataclass
class PushResult:
    project_id: int
    project: str
    queued: list[str] = field(default_factory=list)  # names of the rows that became tasks now
    already_queued: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)  # already queued, their texts brought up to date now
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it cannot be reviewed
    storages_added: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        out = asdict(self)
        out["already_queued"] = len(self.already_queued)
        return out


def review_rows(out_dir: Path) -> list[CoarseRow]:
    """The rows of the build's `review` split, in shard order."""
    rows: list[CoarseRow] = []
    # Resolved once: data/ is a link a later build swaps; these shards stay one export's.
    for shard in sorted((Path(out_dir) / "data").resolve().glob(f"{REVIEW_SPLIT}-*-of-*.parquet")):
        rows += [CoarseRow.model_validate(r) for r in pq.read_table(shard).to_pylist()]
    return rows


def manifest_records(out_dir: Path) -> dict[str, ClipRecord]:
    path = Path(out_dir) / "manifest.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: push needs the build's manifest for the clips' paths")
    return {r["name"]: ClipRecord.model_validate(r) for r in pq.read_table(path).to_pylist()}


def queued_tasks(client: LabelStudio, project_id: int) -> dict[tuple[str, str], dict]:
    """The project's tasks by (name, sha256)."""
    return {(t["data"].get("name"), t["data"].get("sha256")): t for t in client.tasks(project_id)}


def queued_keys(client: LabelStudio, project_id: int) -> set[tuple[str, str]]:
    return set(queued_tasks(client, project_id))


def _audio(record: ClipRecord) -> str | None:
    return record.audio_path if record.audio_path and os.path.isfile(record.audio_path) else None


def _data(row: CoarseRow, record: ClipRecord, root: str) -> dict:
    audio = _audio(record)
    return task_data(
        row,
        video_url=media.local_files_url(record.path, root),
        audio_url=media.local_files_url(audio, root) if audio else None,
        fps=record.fps,
    )


def push(
    out_dir: Path, client: LabelStudio, *, project: str = DEFAULT_PROJECT, document_root: str | None = None
) -> PushResult:
    """Queue the review split of the build in `out_dir` in the project titled `project` (created if missing)."""
    out_dir = Path(out_dir)
    rows = review_rows(out_dir)
    records = manifest_records(out_dir)
    root = media.document_root(document_root)

    project_id = client.ensure_project(project, config.label_config(), config.PROJECT_DESCRIPTION)
    result = PushResult(project_id=project_id, project=project)
    known = queued_tasks(client, project_id)

    tasks, folders = [], set()
    for row in rows:
        key = (row.name, row.sha256)
        record = records.get(row.name)
        if key in known:
            result.already_queued.append(row.name)
            task = known[key]
            if task is None or record is None or record.sha256 != row.sha256 or not record.path:
                continue
            try:
                data = _data(row, record, root)
            except media.MediaError:  # served from elsewhere now: the task keeps the URLs it was queued with
                continue
            if task["data"] != data:
                client.request("PATCH", f"/api/tasks/{task['id']}", json={"data": data})
                result.refreshed.append(row.name)
            continue
        if not row.sha256:
            result.skipped[row.name] = "the row has no clip hash: a decision could not be tied to a clip"
        elif record is None or not record.path or not os.path.isfile(record.path):
            result.skipped[row.name] = "the clip is not in the manifest or not on disk"
        elif record.sha256 != row.sha256:
            result.skipped[row.name] = "the clip changed after the build: build again, then push"
        else:
            audio = _audio(record)
            folders.add(media.clip_folder(record.path, root))
            if audio:
                folders.add(media.clip_folder(audio, root))
            tasks.append({"data": _data(row, record, root)})
            known[key] = None  # queued in this push
            result.queued.append(row.name)

    storage_paths = [s["path"] for s in client.local_storages(project_id)]
    for folder in sorted(folders):
        if not media.covered(folder, storage_paths):
            client.add_local_storage(
                project_id,
                folder,
                title=f"clips: {os.path.basename(folder)}"[:256],
                description="Serves the review tasks' clips; emer-engine imports the tasks itself, do not sync",
            )
            storage_paths.append(folder)
            result.storages_added.append(folder)

    for start in range(0, len(tasks), IMPORT_BATCH):
        client.import_tasks(project_id, tasks[start : start + IMPORT_BATCH])
    log.info(
        "project %r: %d rows queued, %d already queued (%d of them brought up to date), %d cannot be reviewed",
        project,
        len(result.queued),
        len(result.already_queued),
        len(result.refreshed),
        len(result.skipped),
    )
    return result
