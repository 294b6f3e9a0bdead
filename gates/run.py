"""Judge a row by every enabled gate, and route it: corpus, review queue, rejected or failed."""

from __future__ import annotations

from gates import av_match, cross_validation, grounding, high_level, length, validity
from gates.base import LengthBounds
from schemas.config import GatesConfig
from schemas.review import ReviewDecision
from schemas.row import CoarseRow
from schemas.signals import CorpusNorms


def judge(row: CoarseRow, cfg: GatesConfig, bounds: LengthBounds, norms: CorpusNorms | None = None) -> CoarseRow:
    """The row with its label views and one verdict per enabled gate (none for an incomplete row:
    it is in the failed split for a reason of its own). `norms`: the corpus's acoustic norms, which the
    voice view reads (reference values without them)."""
    row = row.model_copy(update={"gates": [], "accepted": False, "review": None})
    # Every row's text is published, judged or not, and the views and gates below read it: cleaned first,
    # once, whichever gates are enabled (the validity verdict records what was removed).
    removed = validity.remove_controls(row)
    if not row.complete:
        return row
    row.label_views = cross_validation.label_views(row, cfg.high_level, norms)
    checks = [
        (cfg.validity.enabled, lambda: validity.check(row, cfg.validity, removed)),
        (cfg.length.enabled, lambda: length.check(row, bounds)),
        (cfg.av_match.enabled, lambda: av_match.check(row, cfg.av_match)),
        (cfg.cross_validation.enabled, lambda: cross_validation.check(row, cfg.cross_validation)),
        (cfg.grounding.enabled, lambda: grounding.check(row, cfg.grounding.rules)),
        (cfg.high_level.enabled, lambda: high_level.check(row, cfg.high_level)),
    ]
    row.gates = [run() for enabled, run in checks if enabled]
    return row


def route(row: CoarseRow, decisions: dict[str, ReviewDecision]) -> str:
    """train: complete and every gate passed, or accepted by a reviewer (with the reviewer's labels);
    review: held back by a gate, not yet reviewed; rejected: a reviewer said no; failed: incomplete.
    A decision counts only for the content it was made on (same sha256)."""
    if not row.complete:
        return "failed"
    if all(g.passed for g in row.gates):
        row.accepted = True
        return "train"
    decision = decisions.get(row.name)
    if decision is None or decision.sha256 != row.sha256:
        return "review"
    row.review = decision
    if not decision.accepted:
        return "rejected"
    row.accepted = True
    if decision.labels is not None:
        row.labels = decision.labels
    return "train"
