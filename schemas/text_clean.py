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
