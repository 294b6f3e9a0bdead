"""Validity: fields present, each text in its language, no leaked prompt scaffolding, labels that parse."""

from __future__ import annotations

import re

from gates.base import CJK, han_share, unquoted, verdict
from schemas.config import ValidityGate
from schemas.gates import GateVerdict
from schemas.row import CoarseRow

# What leaks from our prompts and from chat templates into answers: section headers of the
# disambiguation prompt, role tags, code fences, unfilled template slots, refusals.
SCAFFOLDING = re.compile(
    r"(?im)^\s*(?:visual clues?|acoustic clues?|audio clues?|subtitle|input|output|answer|description|"
    r"assistant|user|system)\s*(?:\([^)]*\))?\s*[:：]"
    r"|<\|[a-z_]+\|>|```|\{(?:visual_clue|audio_clue|subtitle|text|description)\}|\bas an ai\b|\bi cannot help\b"
)
LABEL = re.compile(r"^[a-z][a-z' -]*[a-z]$")


def check(row: CoarseRow, cfg: ValidityGate) -> GateVerdict:
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
    return verdict(
        "validity",
        problems,
        "fields present, languages right, no scaffolding, labels parse",
        score=round(share, 3) if zh else None,
        threshold=cfg.min_cjk_share_zh,
    )
