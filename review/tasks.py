"""A held-back row as a Label Studio task: the fields `review.config`'s interface shows.

`name` and `sha256` travel with the task: they say which clip content a decision is about. Label Studio's
Text tag shows each line of a field on a line of its own, so every text here is plain lines.
"""

from __future__ import annotations

import re

from schemas.gates import GateVerdict
from schemas.row import ClueSet, CoarseRow

NONE = "—"  # what a reviewer sees for an absent field (Label Studio shows nothing for an empty text)

# A gate's reason lists every problem it found ("; "-joined), but its one score belongs to one check: the score
# is shown right after the text of that check, and not at all when the reason is about other checks. Matched
# against the gates' own wording: tests/review/test_tasks.py runs the real gates, so a reworded reason fails
# there rather than on a reviewer's screen. None: the gate has one check, or its score counts every problem listed.
SCORED_CHECK: dict[str, re.Pattern[str] | None] = {
    "validity": re.compile(r"Chinese description is \d+% Chinese \(< \d+%\): wrong-language translation"),
    "length": None,  # one check: the word count against the bound it crossed
    "av_match": None,  # one check: the weaker of speech and face against its minimum
    "cross_validation": re.compile(r"labels \[[^\]]*\] agree with no clue \(best EMER Avg [\d.]+ < [\d.]+\)"),
    "grounding": None,  # the number of contradictions listed
    "high_level": None,  # the share of the voting views that agree with the labels
}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def gate_line(g: GateVerdict) -> str:
    """`gate: reason`, with `(score S, threshold T)` after the check the score measures, if the reason has it."""
    line = f"{g.gate}: {g.reason}"
    if g.score is None:
        return line
    numbers = (
        f" (score {_number(g.score)})"
        if g.threshold is None
        else f" (score {_number(g.score)}, threshold {_number(g.threshold)})"
    )
    if g.gate not in SCORED_CHECK or SCORED_CHECK[g.gate] is None:
        # Not listed: a gate of one check, whose score is what its threshold applies to (schemas.gates).
        return line + numbers
    found = SCORED_CHECK[g.gate].search(line)
    return line if found is None else line[: found.end()] + numbers + line[found.end() :]


def gate_text(gates: list[GateVerdict]) -> str:
    """The failed gates, one per line: name, reason, and the score against the threshold of the check it measures."""
    return "\n".join(gate_line(g) for g in gates if not g.passed) or NONE


_PARTS = (("without_subtitle", "Without the subtitle"), ("with_subtitle", "With the subtitle"))


def _why_missing(row: CoarseRow, stage: str, part: str) -> str:
    """Why a clue (or one of its two asks) is not on the row, in the row's own words where it has them."""
    said = [e.message for e in row.errors if e.stage == stage]
    if said:
        return "; ".join(said)  # e.g. "skipped: silent audio (peak -91 dB < -60 dB)"
    if part == "with_subtitle" and not row.subtitle:
        return "not asked: the clip has no subtitle"
    calls = [c for c in row.provenance if c.stage == stage]
    if part == "with_subtitle" and calls and all(c.server == "local" for c in calls):
        return "not asked: measured from the clip (the signals backend does not read the subtitle)"
    if row.clip_status != "ok" and stage == "audio_clue":
        return f"not asked: {row.clip_error or row.clip_status}"
    return "not given"


def clue_header(title: str, clues: ClueSet | None) -> str:
    """The header names the parts that are there: both asks, one of them, or none."""
    there = [label.lower() for field, label in _PARTS if clues is not None and getattr(clues, field) is not None]
    if len(there) == 2:
        return f"{title} (without and with the subtitle)"
    if there:
        return f"{title} ({there[0]} only)"
    return f"{title} (none)"


def clue_text(row: CoarseRow, stage: str) -> str:
    """Each ask of the clue under its own label, with its emotional states; a missing one says why."""
    clues: ClueSet | None = getattr(row, stage)
    if clues is None or (clues.without_subtitle is None and clues.with_subtitle is None):
        return _why_missing(row, stage, "")
    parts = []
    for field, label in _PARTS:
        reply = getattr(clues, field)
        if reply is None:
            parts.append(f"{label}: {_why_missing(row, stage, field)}")
        else:
            states = ", ".join(reply.emotional_states) or NONE
            parts.append(f"{label}: {reply.clues}\nEmotional states: {states}")
    return "\n\n".join(parts)


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
    """The task's `data`: media URLs, the identity of the clip and every text the reviewer judges.
    `name` comes first: Label Studio's task list shows the data fields as columns (review.config makes it
    the first one)."""
    return {
        "name": row.name,
        "sha256": row.sha256,
        "video": video_url,
        "audio": audio_url or video_url,
        "fps": round(fps or 25.0, 3),
        "gates": gate_text(row.gates),
        "labels": ", ".join(row.labels) or NONE,
        "subtitle": subtitle_text(row),
        "audio_clues_header": clue_header("Audio clues", row.audio_clue),
        "audio_clues": clue_text(row, "audio_clue"),
        "visual_clues_header": clue_header("Visual clues", row.visual_clue),
        "visual_clues": clue_text(row, "visual_clue"),
        "description_en": row.description_en or NONE,
        "description_zh": row.description_zh or NONE,
    }
