"""What every gate shares: the context it judges in, and how a verdict is made."""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.gates import GateVerdict

# Quoted spans (a subtitle cited in a description) are in the source's language, not the text's.
_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"|「[^」]*」|‘[^’]*’")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


def unquoted(text: str) -> str:
    return _QUOTED.sub(" ", text)


def han_share(text: str) -> float:
    """Share of Han characters among Han and Latin letters (a Latin word counts once per letter)."""
    han, latin = len(_HAN.findall(text)), len(_LATIN.findall(text))
    return han / (han + latin) if han + latin else 0.0


def words(text: str | None) -> int:
    return len((text or "").split())


@dataclass(frozen=True)
class LengthBounds:
    low: int
    high: int
    source: str  # "fixed" or "quantiles of N descriptions"


def verdict(
    gate: str, problems: list[str], ok_reason: str, score: float | None = None, threshold: float | None = None
) -> GateVerdict:
    return GateVerdict(
        gate=gate, passed=not problems, score=score, threshold=threshold, reason="; ".join(problems) or ok_reason
    )
