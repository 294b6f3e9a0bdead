"""High-level filter (MER-Caption+): classifier views of the clip itself vote, and labels that disagree
with the vote are held back.

Three views, each from a source of its own, none a template of another's measurements:
- face: the facial-expression classifier's distribution over the face crops (FER2013 classes; where no
  classifier ran, a smile measured as AU12 from the landmarks): a level-1 group and a valence;
- voice: the voice's arousal against the corpus's norms (annotators/signals/acoustics.py): high or low
  energy, no valence;
- subtitle_sentiment: VADER's reading of the subtitle's words (annotators/signals/sentiment.py): a valence.
A view below its threshold (no face, a neutral face, no speech, a voice neither raised nor subdued, words
neither clearly positive nor negative, or words whose lexicon cues point to the valence opposite to VADER's)
abstains and does not vote. The vote: the valence and the group
the voting views agree on (views that split decide nothing), and the voice's arousal. A row is held back
when its labels (mapped to the lexicon's heads, then to level-1 groups and arousal by high_level.toml)
lie outside the voted group, are all of the opposite valence, or are all of the opposite arousal (calm or
tired labels on a raised voice, excited or angry ones on a subdued voice). A row with no voting view
passes, and says so.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from annotators.signals.acoustics import read_voice
from annotators.signals.clues import EXPRESSION_HEADS, speaks, strong_expression
from annotators.signals.sentiment import contrary_cues, subtitle_sentiment
from annotators.signals.vocabulary import lexicon
from gates.base import verdict
from schemas.config import HighLevelGate
from schemas.gates import GateVerdict, LabelView
from schemas.row import CoarseRow
from schemas.signals import CorpusNorms

GROUPS_PATH = Path(__file__).with_name("high_level.toml")
VIEWS = ("face", "voice", "subtitle_sentiment")
_OPPOSITE = {"positive": "negative", "negative": "positive", "high": "low", "low": "high"}


@dataclass(frozen=True)
class Groups:
    version: str
    group_of: dict[str, str]  # lexicon head -> level-1 group
    arousal_of: dict[str, str]  # lexicon head -> high / low (heads of either energy are absent)


@cache
def groups(path: Path = GROUPS_PATH) -> Groups:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    group_of: dict[str, str] = {}
    for group, heads in data["groups"].items():
        for head in heads:
            if head in group_of:
                raise ValueError(f"{path}: {head!r} is in both {group_of[head]!r} and {group!r}")
            group_of[head] = group
    arousal_of = {head: level for level, heads in data["arousal"].items() for head in heads}
    known = {g.head for g in lexicon().groups}
    missing, unknown = known - set(group_of), (set(group_of) | set(arousal_of)) - known
    if missing or unknown or set(data["arousal"]) - {"high", "low"}:
        raise ValueError(f"{path}: heads without a group {sorted(missing)}, not lexicon heads {sorted(unknown)}")
    return Groups(data["version"], group_of, arousal_of)


def _head(label: str) -> str | None:
    g = lexicon().group(label)
    return g.head if g else None


# --- the views ------------------------------------------------------------------------------------


def face_view(row: CoarseRow, cfg: HighLevelGate) -> LabelView:
    v = row.signals.visual if row.signals else None
    basis = (v.expression_model if v and v.expressions else None) or "the face measurements"
    if v is None or v.face_ratio < cfg.min_face_ratio:
        seen = f": a face in {v.face_ratio:.0%} of {v.frames} frames" if v else ""
        return LabelView(source="face", basis=basis, abstained=f"no face{seen}")
    if v.expressions:
        top = sorted(v.expressions.items(), key=lambda kv: -kv[1])[:3]
        ranked = ", ".join(f"{EXPRESSION_HEADS.get(k, k)} {p:.2f}" for k, p in top)
        strong = strong_expression(v, cfg.min_expression_probability)
        if strong is None:
            return LabelView(
                source="face",
                basis=basis,
                evidence=f"expression classes {ranked}",
                abstained=f"no expression class other than neutral reaches {cfg.min_expression_probability}",
            )
        head = strong[0]
        valence = lexicon().valence(head)
        return LabelView(
            source="face",
            labels=[head],
            basis=basis,
            valence=valence if valence in ("positive", "negative") else None,
            evidence=f"expression classes {ranked}",
        )
    ratio = v.smile_ratio  # the share of face frames with AU12 present (annotators/signals/faces.py)
    basis = f"a smile (AU12) measured by {v.detector or 'the face detector'}"
    if ratio >= cfg.min_smile_ratio:
        return LabelView(
            source="face",
            labels=["happy"],
            basis=basis,
            valence="positive",
            evidence=f"smiling in {ratio:.0%} of the face frames",
        )
    return LabelView(
        source="face",
        basis=basis,
        evidence=f"smiling in {ratio:.0%} of the face frames",
        abstained=f"no expression classifier ran, and the face smiles in under {cfg.min_smile_ratio:.0%} of frames",
    )


def voice_view(row: CoarseRow, cfg: HighLevelGate, norms: CorpusNorms | None) -> LabelView:
    a = row.signals.audio if row.signals else None
    basis = f"the voice's arousal against {norms.source if norms and norms.source else 'reference values'}"
    if not speaks(a):
        return LabelView(source="voice", basis=basis, abstained="no speech")
    reading = read_voice(a, norms)
    if reading.arousal is None:
        return LabelView(source="voice", basis=basis, abstained="too little speech to read the voice")
    evidence = f"arousal {reading.arousal:+.2f} ({', '.join(reading.evidence) or 'every cue within the middle half'})"
    if reading.level in ("high", "low") and abs(reading.arousal) >= cfg.min_arousal:
        return LabelView(source="voice", basis=basis, arousal=reading.level, evidence=evidence)
    return LabelView(
        source="voice",
        basis=basis,
        evidence=evidence,
        abstained=f"the voice is neither raised nor subdued (level {reading.level}, |arousal| < {cfg.min_arousal})",
    )


def subtitle_view(row: CoarseRow, cfg: HighLevelGate) -> LabelView:
    read = subtitle_sentiment(row.subtitle_english, row.subtitle_english_translated)
    if read is None:
        return LabelView(
            source="subtitle_sentiment",
            basis="VADER on the English subtitle",
            abstained="no English subtitle to read",
        )
    valence = read.valence(cfg.min_subtitle_sentiment)
    evidence = f"VADER compound {read.compound:+.2f}"
    if valence is None:
        return LabelView(
            source="subtitle_sentiment",
            basis=read.basis,
            evidence=evidence,
            abstained=f"the words are not clearly positive or negative (|compound| < {cfg.min_subtitle_sentiment})",
        )
    if contrary := contrary_cues(read, valence):
        return LabelView(
            source="subtitle_sentiment",
            basis=read.basis,
            evidence=evidence,
            abstained=f"VADER says {valence}, the words' cues say {', '.join(contrary)}: ambiguous",
        )
    return LabelView(source="subtitle_sentiment", basis=read.basis, valence=valence, evidence=evidence)


def views(row: CoarseRow, cfg: HighLevelGate, norms: CorpusNorms | None = None) -> list[LabelView]:
    return [face_view(row, cfg), voice_view(row, cfg, norms), subtitle_view(row, cfg)]


# --- the vote -------------------------------------------------------------------------------------


def _said(view: LabelView) -> str:
    if view.abstained:
        return f"{view.source} abstains: {view.abstained}"
    votes = [*view.labels, *([view.valence] if view.valence else [])]
    votes += [f"{view.arousal} arousal"] if view.arousal else []
    return f"{view.source} votes {', '.join(votes)} ({view.evidence}; {view.basis})"


def _agreed(values: list[str]) -> str | None:
    """The value every voting view gives, or None when they split (or none gives one)."""
    return values[0] if values and len(set(values)) == 1 else None


def check(row: CoarseRow, cfg: HighLevelGate) -> GateVerdict:
    table = groups()
    all_views = [v for v in row.label_views if v.source in VIEWS]
    voting = [v for v in all_views if v.abstained is None and v.independent]
    said = "; ".join(_said(v) for v in all_views) or "no view measured"
    if not voting:
        return verdict("high_level", [], f"no independent view votes ({said})")
    heads = [h for h in dict.fromkeys(_head(label) for label in row.labels) if h]
    if not heads:
        return verdict("high_level", [], f"labels {row.labels} are outside the lexicon: nothing to compare ({said})")
    lex = lexicon()
    label_groups = {table.group_of[h] for h in heads}
    label_valence = {lex.valence(h) for h in heads} & {"positive", "negative"}
    label_arousal = [table.arousal_of.get(h) for h in heads]

    face_groups = [table.group_of[_head(label)] for v in voting for label in v.labels if _head(label)]
    group = _agreed(face_groups)
    valence = _agreed([v.valence for v in voting if v.valence])
    arousal = _agreed([v.arousal for v in voting if v.arousal])

    def group_ok() -> bool:
        return group is None or group in label_groups

    def valence_ok(value: str | None) -> bool:
        return value is None or not label_valence or value in label_valence

    def arousal_ok(value: str | None) -> bool:
        return value is None or not all(a == _OPPOSITE[value] for a in label_arousal)

    problems = []
    shown = f"{', '.join(row.labels)} (groups {', '.join(sorted(label_groups))})"
    # Each problem starts with its kind and the vote, so the card's commonest reasons group alike holds.
    if cfg.compare_groups and not group_ok():
        problems.append(f"labels outside the voted group ({group}): {shown}")
    if cfg.compare_valence and not valence_ok(valence):
        problems.append(f"labels of the opposite valence ({valence} voted): {shown} are {', '.join(label_valence)}")
    if cfg.compare_arousal and not arousal_ok(arousal):
        problems.append(f"labels of the opposite arousal ({arousal} voice): {shown}")
    if problems:
        problems.append(f"views: {said}")

    def view_agrees(v: LabelView) -> bool:
        own_groups = {table.group_of[h] for h in (_head(label) for label in v.labels) if h}
        return bool(not own_groups or own_groups & label_groups) and valence_ok(v.valence) and arousal_ok(v.arousal)

    score = sum(1 for v in voting if view_agrees(v)) / len(voting)
    return verdict(
        "high_level",
        problems,
        f"labels {shown} agree with the vote of {len(voting)} independent view(s) ({said})",
        score=round(score, 3),
    )
