"""The EMER / MER2024 open-vocabulary metric: set-level accuracy and recall after synonym grouping.

Follows MERTools MER2024/main-ov.py (`calculate_openset_overlap_rate_mer2024`): labels lower-cased,
each word mapped to the first word of its synonym group (unmapped words stay themselves), then per
clip Accuracy_s = |Y ∩ Ŷ| / |Ŷ| and Recall_s = |Y ∩ Ŷ| / |Y|, an empty prediction scoring 0 on both;
the corpus scores are means over clips, and Avg is the mean of the two.

Empty gold: the authors' MER2024 gold sets are never empty (their code would divide by zero); the
wheel metric they wrote next skips such clips. Both metrics here skip them, so the two agree on
every empty case: empty gold -> not scored; empty prediction -> (0, 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from metrics.synonyms import SynonymGroups, as_mapping
from schemas.metrics import ClipScore, EmerSummary


class EmptyGold(ValueError):
    """A clip with no gold label has no recall: it is skipped, never scored."""


def normalise(labels: Iterable[str]) -> list[str]:
    """Lower-cased, stripped, blanks dropped (the authors lower-case every label before mapping)."""
    return [label.lower().strip() for label in labels if label and label.strip()]


def mapped_set(labels: Iterable[str], mapping: Mapping[str, str]) -> set[str]:
    return {mapping.get(label, label) for label in normalise(labels)}


def set_scores(gold: set[str], pred: set[str]) -> tuple[float, float]:
    """(precision, recall) of two mapped label sets; the empty cases shared with the wheel metric."""
    if not gold:
        raise EmptyGold("the gold label set is empty: the clip is not scored")
    if not pred:
        return 0.0, 0.0
    hit = len(gold & pred)
    return hit / len(pred), hit / len(gold)


def emer_scores(
    gold: list[str], pred: list[str], mapping: Mapping[str, str] | Iterable[Iterable[str]] | SynonymGroups | None
) -> tuple[float, float]:
    """(Accuracy_s, Recall_s) for one clip.

    `mapping`: a word -> head dict, the synonym groups as a list of lists (each word -> its group's
    first word), SynonymGroups (its global groups), or None (exact match). Pure: no I/O, no state.
    Raises EmptyGold (a ValueError) when `gold` is empty, since recall is undefined there.
    """
    table = as_mapping(mapping)
    return set_scores(mapped_set(gold, table), mapped_set(pred, table))


def emer_corpus(
    gold: Mapping[str, list[str]],
    pred: Mapping[str, list[str]],
    groups: SynonymGroups | None = None,
    group_sources: Mapping[str, str] | None = None,
) -> tuple[EmerSummary, list[ClipScore]]:
    """Score every gold clip: a clip without a prediction counts as an empty prediction (0, 0).

    `groups` gives each clip's mapping (its own groups when it has them); `group_sources` says, per
    clip, where they came from, for the report."""
    groups = groups or SynonymGroups()
    clips: list[ClipScore] = []
    accuracy, recall = [], []
    for name, gold_labels in gold.items():
        pred_labels = pred.get(name)
        mapping = groups.mapping(name)
        source = (group_sources or {}).get(name) or _default_source(groups, name)
        gold_set, pred_set = mapped_set(gold_labels, mapping), mapped_set(pred_labels or [], mapping)
        score = ClipScore(
            name=name,
            gold=list(gold_labels),
            pred=list(pred_labels or []),
            prediction_missing=pred_labels is None,
            scored=bool(gold_set),
            groups_source=source,
        )
        if gold_set:
            score.accuracy_s, score.recall_s = set_scores(gold_set, pred_set)
            accuracy.append(score.accuracy_s)
            recall.append(score.recall_s)
        clips.append(score)
    acc, rec = _mean(accuracy), _mean(recall)
    summary = EmerSummary(
        avg=(acc + rec) / 2, accuracy_s=acc, recall_s=rec, clips=len(accuracy), skipped=len(clips) - len(accuracy)
    )
    return summary, clips


def _default_source(groups: SynonymGroups, name: str) -> str:
    if not (groups.has_clip(name) or groups.global_groups):
        return "none"
    return "file" if groups.source.startswith("file") else groups.source


def _mean(values: list[float]) -> float:
    # No scored clip: 0, as the authors' newer code does ("for special case").
    return sum(values) / len(values) if values else 0.0
