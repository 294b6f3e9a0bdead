"""Validity: fields present, each text in its language, no leaked prompt scaffolding, labels that parse.

The gate also cleans the row it judges (judge() gives it its own): control and bidi-override characters
(NUL, ANSI escapes, BEL, backspace, U+202E, ...) are removed from every text field, and the verdict's
reason says which were removed from which fields, so the change is on the row.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from gates.base import CJK, han_share, unquoted, verdict
from schemas.config import ValidityGate
from schemas.gates import GateVerdict
from schemas.row import CoarseRow
from schemas.text_clean import remove_control_characters

# What leaks from our prompts and from chat templates into answers: section headers of the
# disambiguation prompt, role tags, code fences, unfilled template slots, refusals.
SCAFFOLDING = re.compile(
    r"(?im)^\s*(?:visual clues?|acoustic clues?|audio clues?|subtitle|input|output|answer|description|"
    r"assistant|user|system)\s*(?:\([^)]*\))?\s*[:：]"
    r"|<\|[a-z_]+\|>|```|\{(?:visual_clue|audio_clue|subtitle|text|description)\}|\bas an ai\b|\bi cannot help\b"
)
LABEL = re.compile(r"^[a-z][a-z' -]*[a-z]$")


def remove_controls(model: BaseModel, prefix: str = "") -> dict[str, list[str]]:
    """Remove control and bidi-override characters from every text in `model`, nested models and lists
    included, in place; returns the dotted fields changed, with the code points removed."""
    changed: dict[str, list[str]] = {}

    def clean(value, where: str):
        if isinstance(value, str):
            text, removed = remove_control_characters(value)
            if removed:
                changed[where] = sorted(set(changed.get(where, [])) | set(removed))
            return text
        if isinstance(value, list):
            return [clean(v, where) for v in value]
        if isinstance(value, BaseModel):
            changed.update(remove_controls(value, f"{where}."))
        return value

    for name in type(model).model_fields:
        value = getattr(model, name)
        cleaned = clean(value, f"{prefix}{name}")
        if cleaned is not value and cleaned != value:
            setattr(model, name, cleaned)
    return changed


def _removal_note(changed: dict[str, list[str]]) -> str:
    points = sorted({p for removed in changed.values() for p in removed})
    return f"removed control characters {', '.join(points)} from {', '.join(sorted(changed))}"


def check(row: CoarseRow, cfg: ValidityGate, changed: dict[str, list[str]] | None = None) -> GateVerdict:
    """`changed`: what gates.run.judge already removed from the row (else it is removed here)."""
    if changed is None:
        changed = remove_controls(row)  # first: the rules below judge the text as it will be kept
    problems = []
    for field in ("description_en", "description_zh"):
        if not (getattr(row, field) or "").strip():
            problems.append(f"{field} is empty")
    if not row.labels:
        problems.append("no labels")
    en, zh = row.description_en or "", row.description_zh or ""
    if en and CJK.search(unquoted(en)):
        problems.append(f"English description contains CJK text: {CJK.search(unquoted(en)).group(0)!r}...")
    share = han_share(unquoted(zh)) if zh else 0.0
    if zh and share < cfg.min_cjk_share_zh:
        problems.append(
            f"Chinese description is {share:.0%} Chinese (< {cfg.min_cjk_share_zh:.0%}): wrong-language translation"
        )
    for field, text in (
        ("description_en", en),
        ("description_zh", zh),
        ("subtitle_analysis", row.subtitle_analysis or ""),
    ):
        leak = SCAFFOLDING.search(text)
        if leak:
            problems.append(f"{field} leaks prompt scaffolding: {leak.group(0).strip()!r}")
    bad = [label for label in row.labels if not LABEL.match(label) or len(label.split()) > cfg.max_label_words]
    if bad:
        problems.append(f"labels that are not emotion words: {bad}")
    judged = verdict(
        "validity",
        problems,
        "fields present, languages right, no scaffolding, labels parse",
        score=round(share, 3) if zh else None,
        threshold=cfg.min_cjk_share_zh,
    )
    if changed:
        judged.reason = f"{judged.reason}; {_removal_note(changed)}"
    return judged
