"""Grounding: claims in a clue that the clip's measured signals contradict ("shouting" on a quiet
track, "smiling" with no face found). Rules are versioned data (grounding_rules.toml)."""

from __future__ import annotations

import operator
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gates.base import verdict
from schemas.gates import GateVerdict
from schemas.row import ClueSet, CoarseRow

DEFAULT_RULES = Path(__file__).with_name("grounding_rules.toml")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_NEGATED = re.compile(r"\b(?:no|not|never|without|nor|neither|n't)\b(?:\W+\w+){0,2}\W*$", re.IGNORECASE)


@dataclass(frozen=True)
class Rule:
    clue: str
    claim: re.Pattern
    signal: str
    op: str
    value: float
    missing: str
    reason: str


@cache
def load_rules(path: Path = DEFAULT_RULES) -> tuple[str, tuple[Rule, ...]]:
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    rules = tuple(
        Rule(
            r["clue"],
            re.compile(r["claim"], re.IGNORECASE),
            r["signal"],
            r["op"],
            float(r["value"]),
            r["missing"],
            r["reason"],
        )
        for r in data["rule"]
    )
    for rule in rules:
        if (
            rule.op not in _OPS
            or rule.missing not in ("skip", "contradicts")
            or rule.clue not in ("audio_clue", "visual_clue")
        ):
            raise ValueError(f"{path}: bad rule {rule}")
    return data["version"], rules


def _claimed(rule: Rule, text: str) -> str | None:
    for match in rule.claim.finditer(text):
        if not _NEGATED.search(text[max(0, match.start() - 30) : match.start()]):
            return match.group(0)
    return None


def _measured(row: CoarseRow, path: str) -> float | None:
    value: object = row.signals
    for part in path.split("."):
        value = getattr(value, part, None) if value is not None else None
    return value  # type: ignore[return-value]


def _texts(clues: ClueSet | None) -> list[str]:
    return [r.clues for r in (clues.without_subtitle, clues.with_subtitle) if r is not None] if clues else []


def check(row: CoarseRow, rules_path: Path | None = None) -> GateVerdict:
    version, rules = load_rules(rules_path or DEFAULT_RULES)
    problems = []
    for rule in rules:
        claim = next((c for c in (_claimed(rule, t) for t in _texts(getattr(row, rule.clue))) if c), None)
        if claim is None:
            continue
        measured = _measured(row, rule.signal)
        if measured is None:
            contradicted = rule.missing == "contradicts"
            shown = "nothing"
        else:
            contradicted = _OPS[rule.op](measured, rule.value)
            shown = f"{measured:.2f}".rstrip("0").rstrip(".")
        if contradicted:
            problems.append(f"{rule.clue} says {claim!r}: " + rule.reason.format(measured=shown, value=rule.value))
    return verdict(
        "grounding",
        problems,
        f"no clue claim contradicts the measurements (rules {version})",
        score=float(len(problems)),
        threshold=0.0,
    )
