"""A held-back row as a Label Studio task: the fields `review.config`'s interface shows.

`name` and `sha256` travel with the task: they say which clip content a decision is about.
"""

from __future__ import annotations

from schemas.gates import GateVerdict
from schemas.row import ClueSet, CoarseRow

NONE = "—"  # what a reviewer sees for an absent field (Label Studio shows nothing for an empty text)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def gate_text(gates: list[GateVerdict]) -> str:
    """The failed gates, one per line: name, score against threshold, and the reason."""
    lines = [
        f"{g.gate} (score {_number(g.score)}, threshold {_number(g.threshold)}): {g.reason}"
        for g in gates
        if not g.passed
    ]
    return "\n".join(lines) or NONE


def clue_text(clues: ClueSet | None) -> str:
    if clues is None:
        return NONE
    parts = []
    for label, reply in (("Without the subtitle", clues.without_subtitle), ("With the subtitle", clues.with_subtitle)):
        if reply is not None:
            states = ", ".join(reply.emotional_states) or NONE
            parts.append(f"{label}: {reply.clues}\n  emotional states: {states}")
    return "\n\n".join(parts) or NONE


def subtitle_text(row: CoarseRow) -> str:
    lines = []
    if row.subtitle_english:
        lines.append(f"EN: {row.subtitle_english}")
    elif row.subtitle_english_translated:
        lines.append(f"EN (machine translated): {row.subtitle_english_translated}")
    if row.subtitle_chinese:
        lines.append(f"ZH: {row.subtitle_chinese}")
    return "\n".join(lines) or NONE


def task_data(row: CoarseRow, *, video_url: str, audio_url: str | None = None, fps: float | None = None) -> dict:
    """The task's `data`: media URLs, the identity of the clip and every text the reviewer judges."""
    return {
        "name": row.name,
        "sha256": row.sha256,
        "video": video_url,
        "audio": audio_url or video_url,
        "fps": round(fps or 25.0, 3),
        "gates": gate_text(row.gates),
        "labels": ", ".join(row.labels) or NONE,
        "subtitle": subtitle_text(row),
        "audio_clues": clue_text(row.audio_clue),
        "visual_clues": clue_text(row.visual_clue),
        "description_en": row.description_en or NONE,
        "description_zh": row.description_zh or NONE,
    }
