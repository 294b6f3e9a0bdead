"""Pull: the review project's annotations become `ReviewDecision` records in OUT/review/decisions.parquet,
and `load_decisions` hands them to the build.

One decision per task: the task's latest annotation (by last update) that is not a skip. Tasks
nobody reviewed give none. The file mirrors the project: each pull rewrites it whole.

A decision is about one clip content: `load_decisions(out_dir, sha256s)` (and `applicable`) keep a
decision only while the clip's sha256 is the one the reviewer saw; a changed clip waits for a new review.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from review import config
from review.label_studio import LabelStudio
from review.queue import DEFAULT_PROJECT
from schemas.arrow import to_table
from schemas.review import ReviewDecision

DECISIONS = Path("review") / "decisions.parquet"  # relative to the build's output folder

log = logging.getLogger(__name__)


class PullError(RuntimeError):
    pass


def decisions_path(out_dir: Path) -> Path:
    return Path(out_dir) / DECISIONS


def parse_labels(text: str) -> list[str] | None:
    """A reviewer's labels: comma-, semicolon- or line-separated, lower-cased, each once; None when empty."""
    labels: list[str] = []
    for part in re.split(r"[,;\n，、；]+", text):
        label = " ".join(part.split()).lower()
        if label and label not in labels:
            labels.append(label)
    return labels or None


def _controls(result: list[dict]) -> dict[str, dict]:
    return {item.get("from_name"): item.get("value", {}) for item in result}


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    stamp = datetime.fromisoformat(value)
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).isoformat()


def decision_from(task: dict, annotation: dict, reviewers: Mapping[int, str]) -> ReviewDecision | None:
    """The decision one annotation records; None when it records none (no accept/reject chosen)."""
    values = _controls(annotation.get("result") or [])
    choices = values.get(config.DECISION, {}).get("choices") or []
    if len(choices) != 1 or choices[0] not in (config.ACCEPT, config.REJECT):
        log.warning(
            "task %s: annotation %s has no accept/reject choice; ignored", task.get("id"), annotation.get("id")
        )
        return None
    labels = parse_labels("\n".join(values.get(config.LABELS, {}).get("text") or []))
    note = "\n".join(values.get(config.NOTE, {}).get("text") or []).strip() or None
    who = annotation.get("completed_by")
    who = who.get("id") if isinstance(who, dict) else who
    return ReviewDecision(
        name=task["data"]["name"],
        sha256=task["data"]["sha256"],
        accepted=choices[0] == config.ACCEPT,
        labels=labels,
        note=note,
        reviewer=reviewers.get(who, f"user {who}") if who is not None else None,
        reviewed_at=_iso(annotation.get("updated_at") or annotation.get("created_at")),
        task_id=task["id"],
    )


def _latest(annotations: list[dict]) -> list[dict]:
    """Annotations newest first (last update, then id), skips left out."""
    kept = [a for a in annotations if not a.get("was_cancelled")]
    return sorted(
        kept, key=lambda a: (_stamp(_iso(a.get("updated_at") or a.get("created_at"))), a.get("id") or 0), reverse=True
    )


def task_decision(task: dict, reviewers: Mapping[int, str]) -> ReviewDecision | None:
    """The task's decision: its latest annotation that records one."""
    if not task.get("data", {}).get("name") or not task["data"].get("sha256"):
        return None  # not a task `review.queue` made
    for annotation in _latest(task.get("annotations") or []):
        decision = decision_from(task, annotation, reviewers)
        if decision is not None:
            return decision
    return None


def write_decisions(decisions: list[ReviewDecision], out_dir: Path) -> Path:
    """OUT/review/decisions.parquet, replaced whole (written aside, then renamed)."""
    path = decisions_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(to_table(decisions, ReviewDecision), partial)
    partial.replace(path)
    return path


def pull(out_dir: Path, client: LabelStudio, *, project: str = DEFAULT_PROJECT) -> list[ReviewDecision]:
    """Read every task's decision from the project titled `project` and write them to OUT/review/decisions.parquet."""
    project_id = client.project_id(project)
    if project_id is None:
        raise PullError(
            f"Label Studio at {client.url} has no project titled {project!r}: "
            "push first, or name the project with --project"
        )
    reviewers = client.user_emails()
    decisions = [d for d in (task_decision(t, reviewers) for t in client.tasks(project_id)) if d is not None]
    decisions.sort(key=lambda d: (d.name, d.reviewed_at or ""))
    path = write_decisions(decisions, out_dir)
    log.info(
        "project %r: %d decisions (%d accepted) written to %s",
        project,
        len(decisions),
        sum(d.accepted for d in decisions),
        path,
    )
    return decisions


def _newest(decisions: list[ReviewDecision]) -> ReviewDecision:
    return max(decisions, key=lambda d: (_stamp(d.reviewed_at), d.task_id or 0))


def _stamp(text: str | None) -> datetime:
    return datetime.fromisoformat(text) if text else datetime.min.replace(tzinfo=UTC)


def load_decisions(out_dir: Path, sha256s: Mapping[str, str | None] | None = None) -> dict[str, ReviewDecision]:
    """The reviewers' decisions from OUT/review/decisions.parquet, keyed by clip name ({} before any pull).

    With `sha256s` (clip name -> the clip's current sha256, e.g. from the manifest), a decision is kept
    only when it is about that content. A name with several decisions (its clip changed and was reviewed
    again) keeps the newest of those that remain.
    """
    path = decisions_path(out_dir)
    if not path.exists():
        return {}
    by_name: dict[str, list[ReviewDecision]] = {}
    for record in pq.read_table(path).to_pylist():
        decision = ReviewDecision.model_validate(record)
        if sha256s is not None and sha256s.get(decision.name) != decision.sha256:
            continue
        by_name.setdefault(decision.name, []).append(decision)
    return {name: _newest(found) for name, found in by_name.items()}


def applicable(decisions: Mapping[str, ReviewDecision], name: str, sha256: str | None) -> ReviewDecision | None:
    """The decision for the clip `name` when it was made about this content (`sha256`), else None."""
    decision = decisions.get(name)
    return decision if decision is not None and sha256 is not None and decision.sha256 == sha256 else None
