"""Clean model text of scaffolding that leaks from prompts into answers."""

from __future__ import annotations

import re

# 88 of the 332 EMER-Fine English descriptions start with a leaked "Input:"/"Output:"; translations
# leak the same way, in both languages.
_LEAKED_PREFIX = re.compile(
    r"^\s*(?:(?:input|output|translation|answer|description|输入|输出|翻译|译文|回答)\s*[:：]\s*)+",
    re.IGNORECASE,
)


def strip_leaked_prefix(text: str) -> str:
    return _LEAKED_PREFIX.sub("", text).strip()


# Characters that have no place in a subtitle or a description and can do harm where the text is shown:
# C0/C1 controls (NUL, BEL, backspace, ANSI escapes' ESC) other than tab and newline, and the Unicode
# bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) that reorder what a reader sees.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# What an ANSI escape leaves once its ESC is gone would still be noise: remove whole sequences first.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def remove_control_characters(text: str) -> tuple[str, list[str]]:
    """The text without control and bidi-override characters, and the code points removed (e.g.
    ["U+0000", "U+202E"]), so that the change can be recorded where the text is kept."""
    if not _CONTROLS.search(text):  # nearly every text: one scan (every field of every row is cleaned)
        return text, []
    removed = [f"U+{ord(c):04X}" for m in _ANSI.finditer(text) for c in m.group()[:1]]
    text = _ANSI.sub("", text)
    removed += [f"U+{ord(m.group()):04X}" for m in _CONTROLS.finditer(text)]
    return _CONTROLS.sub("", text), sorted(set(removed))
