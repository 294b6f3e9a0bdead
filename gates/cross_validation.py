"""Cross-validation: independent annotators must agree.

Views (schemas/gates.py LabelView, each with what it is made from): the audio and visual clues' states,
the labels stage's reading of the description, the engine's lexicon reading of the same description,
and the classifier views of the clip itself (gates/high_level.py: face, voice, subtitle_sentiment).
A view that templates another's measurements is recorded but not counted: the clues the signals backend
writes are its templates of the face and voice measurements (the face view reads those itself), when
the labels stage is the signals backend's lexicon, the lexicon reading of the description is the labels
themselves, and a clue never written (the audio clue of a silent clip) is no annotator's view.
Agreement is the EMER metric with the engine's synonym groups (metrics/emer.py), the labels scored as the
prediction against each clue view as the reference. Like the successor pipeline (which kept a clip only
when a classifier and the LLM agreed), a row passes when its labels agree with at least one independent
clue view, no two clue views point to opposite sentiments, and its labels say what its own description says."""

from __future__ import annotations

from itertools import combinations

from annotators.signals.vocabulary import lexicon
from gates import high_level
from gates.base import verdict
from metrics.emer import emer_scores
from schemas.config import CrossValidationGate, HighLevelGate
from schemas.gates import GateVerdict, LabelView
from schemas.labels import normalise_labels
from schemas.row import ClueSet, CoarseRow
from schemas.signals import CorpusNorms

SIGNALS_MODEL = "signals"  # the model name the signals backend records (backends/signals.py)
# The views whose labels are clues about the clip (compared with the labels); the face view stands in for
# the visual clue when the signals backend wrote that clue from the face measurements.
CLUE_VIEWS = ("audio_clue", "visual_clue", "face")
_NAMES = {"audio_clue": "the audio clue", "visual_clue": "the visual clue", "face": "the face's expression"}
# A second line-up's labels (engine/second_lineup.py), stored on the row when it is annotated: "second_lineup:<name>".
SECOND_LINEUP = "second_lineup:"
_TEMPLATED = {
    "audio_clue": "the signals backend's template of the voice measurements (counted as the voice view)",
    "visual_clue": "the signals backend's template of the face measurements (counted as the face view)",
}


def _clue_states(clues: ClueSet | None) -> list[str]:
    reply = clues and (clues.without_subtitle or clues.with_subtitle)
    return normalise_labels(reply.emotional_states) if reply else []


def _model(row: CoarseRow, stage: str) -> str | None:
    return next((c.model for c in reversed(row.provenance) if c.stage == stage), None)


def _made_by(model: str | None) -> str:
    return f"model {model}" if model else "an annotator not recorded in the provenance"


def label_views(
    row: CoarseRow, high_level_cfg: HighLevelGate | None = None, norms: CorpusNorms | None = None
) -> list[LabelView]:
    views = []
    for source in ("audio_clue", "visual_clue"):
        model = _model(row, source)
        if getattr(row, source) is None:
            # Skipped (a silent clip) or never answered: no annotator spoke, so no view of its own to count.
            why = next((e.message for e in row.errors if e.stage == source), "not written")
            views.append(LabelView(source=source, basis=f"no clue ({why})", independent=False))
            continue
        templated = model == SIGNALS_MODEL
        views.append(
            LabelView(
                source=source,
                labels=_clue_states(getattr(row, source)),
                basis=_TEMPLATED[source] if templated else _made_by(model),
                independent=not templated,
            )
        )
    labeller = _model(row, "labels")
    views.append(LabelView(source="description", labels=row.labels, basis=f"the labels stage: {_made_by(labeller)}"))
    views.append(
        LabelView(
            source="description_lexicon",
            # The signals line-up's labels stage is this very reading: not read twice.
            labels=row.labels if labeller == SIGNALS_MODEL else lexicon().labels_in(row.description_en or ""),
            basis="the engine's lexicon on the English description"
            + (" (the labels stage itself)" if labeller == SIGNALS_MODEL else ""),
            independent=labeller != SIGNALS_MODEL,
        )
    )
    views += [v for v in row.label_views if v.source.startswith(SECOND_LINEUP)]  # annotated, not derived here
    return views + high_level.views(row, high_level_cfg or HighLevelGate(), norms)


def agreement(reference: list[str], labels: list[str]) -> float:
    """EMER Avg of `labels` against `reference`, synonyms grouped by the engine's lexicon."""
    accuracy, recall = emer_scores(reference, labels, lexicon().head_of)
    return (accuracy + recall) / 2


def _sentiment(labels: list[str]) -> set[str]:
    lex = lexicon()
    return {v for v in (lex.valence(w) for w in labels) if v in ("positive", "negative")}


def check(row: CoarseRow, cfg: CrossValidationGate) -> GateVerdict:
    views = {v.source: v for v in row.label_views}
    labels = views["description"].labels if "description" in views else row.labels
    clues = {k: views[k].labels for k in CLUE_VIEWS if k in views and views[k].independent and views[k].labels}
    problems = []
    best = max((agreement(ref, labels) for ref in clues.values()), default=None)
    if best is not None and best < cfg.min_agreement:
        said = "; ".join(f"{k} says {', '.join(v)}" for k, v in clues.items())
        problems.append(f"labels {labels} agree with no clue (best EMER Avg {best:.2f} < {cfg.min_agreement}): {said}")
    if cfg.reject_valence_conflict:
        for (a, a_labels), (b, b_labels) in combinations(clues.items(), 2):
            sa, sb = _sentiment(a_labels), _sentiment(b_labels)
            if len(sa) == 1 and len(sb) == 1 and sa != sb:
                problems.append(
                    f"contradictory clues: {_NAMES[a]} is {sa.pop()} ({', '.join(a_labels)}), "
                    f"{_NAMES[b]} {sb.pop()} ({', '.join(b_labels)})"
                )
    lexical = views.get("description_lexicon")
    own = lexical.labels if lexical and lexical.independent else []
    if own and labels and agreement(own, labels) == 0:
        problems.append(f"labels {labels} share nothing with what the description itself says ({', '.join(own)})")
    # Two line-ups must agree on the labels themselves (SignificantOther kept what two VLMs agreed on).
    others = {v.source: v.labels for v in row.label_views if v.source.startswith(SECOND_LINEUP) and v.independent}
    for source, other in ((s, o) for s, o in others.items() if o and labels):
        if (score := agreement(other, labels)) < cfg.min_agreement:
            problems.append(
                f"labels {labels} disagree with {source} ({', '.join(other)}): "
                f"EMER Avg {score:.2f} < {cfg.min_agreement}"
            )
    uncounted = [f"{v.source} ({v.basis})" for v in row.label_views if not v.independent]
    reason = (
        f"labels agree with the clues (best EMER Avg {best:.2f} over {', '.join(clues)})"
        if best is not None
        else "no independent clue states to compare; labels match the description"
    )
    if agreed := [f"{s} ({', '.join(o)})" for s, o in others.items() if o and labels]:
        reason += f"; compared with {', '.join(agreed)}"
    if uncounted:
        reason += f"; not counted as views of their own: {'; '.join(uncounted)}"
    return verdict(
        "cross_validation",
        problems,
        reason,
        score=None if best is None else round(best, 3),
        threshold=cfg.min_agreement,
    )
