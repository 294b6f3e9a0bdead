"""Cross-validation: independent annotators must agree.

Views: the audio clue's states, the visual clue's states, the labels stage's reading of the
description, a lexicon reading of the same description, and the signal annotators' reading of the
measurements. Agreement is the EMER metric with the engine's synonym groups (metrics/emer.py), the
description's labels scored as the prediction against each clue as the reference. Like the successor
pipeline (which kept a clip only when a classifier and the LLM agreed), a row passes when its labels
agree with at least one clue, its clues do not point to opposite sentiments, and its labels say what
its own description says."""

from __future__ import annotations

from annotators.signals.clues import acoustic_clue, visual_clue
from annotators.signals.vocabulary import lexicon
from gates.base import verdict
from metrics.emer import emer_scores
from schemas.config import CrossValidationGate
from schemas.gates import GateVerdict, LabelView
from schemas.labels import normalise_labels
from schemas.row import ClueSet, CoarseRow


def _clue_states(clues: ClueSet | None) -> list[str]:
    reply = clues and (clues.without_subtitle or clues.with_subtitle)
    return normalise_labels(reply.emotional_states) if reply else []


def label_views(row: CoarseRow) -> list[LabelView]:
    views = [
        LabelView(source="audio_clue", labels=_clue_states(row.audio_clue)),
        LabelView(source="visual_clue", labels=_clue_states(row.visual_clue)),
        LabelView(source="description", labels=row.labels),
        LabelView(source="description_lexicon", labels=lexicon().labels_in(row.description_en or "")),
    ]
    if row.signals is not None:
        measured = acoustic_clue(row.signals.audio).emotional_states + visual_clue(row.signals.visual).emotional_states
        views.append(LabelView(source="signals", labels=list(dict.fromkeys(measured))))
    return views


def agreement(reference: list[str], labels: list[str]) -> float:
    """EMER Avg of `labels` against `reference`, synonyms grouped by the engine's lexicon."""
    accuracy, recall = emer_scores(reference, labels, lexicon().head_of)
    return (accuracy + recall) / 2


def _sentiment(labels: list[str]) -> set[str]:
    lex = lexicon()
    return {v for v in (lex.valence(w) for w in labels) if v in ("positive", "negative")}


def check(row: CoarseRow, cfg: CrossValidationGate) -> GateVerdict:
    views = {v.source: v.labels for v in row.label_views}
    labels = views.get("description", [])
    problems = []
    clues = {k: views[k] for k in ("audio_clue", "visual_clue") if views.get(k)}
    best = max((agreement(ref, labels) for ref in clues.values()), default=None)
    if best is not None and best < cfg.min_agreement:
        said = "; ".join(f"{k} says {', '.join(v)}" for k, v in clues.items())
        problems.append(f"labels {labels} agree with no clue (best EMER Avg {best:.2f} < {cfg.min_agreement}): {said}")
    audio_s, visual_s = _sentiment(views.get("audio_clue", [])), _sentiment(views.get("visual_clue", []))
    if cfg.reject_valence_conflict and len(audio_s) == 1 and len(visual_s) == 1 and audio_s != visual_s:
        problems.append(
            f"contradictory clues: the audio clue is {audio_s.pop()} ({', '.join(views['audio_clue'])}), "
            f"the visual clue {visual_s.pop()} ({', '.join(views['visual_clue'])})"
        )
    own = views.get("description_lexicon", [])
    if own and labels and agreement(own, labels) == 0:
        problems.append(f"labels {labels} share nothing with what the description itself says ({', '.join(own)})")
    reason = (
        f"labels agree with the clues (best EMER Avg {best:.2f})"
        if best is not None
        else "no clue states to compare; labels match the description"
    )
    return verdict(
        "cross_validation",
        problems,
        reason,
        score=None if best is None else round(best, 3),
        threshold=cfg.min_agreement,
    )
