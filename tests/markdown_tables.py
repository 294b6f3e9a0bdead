"""Reading a Markdown table as a reader sees it, with markdown-it (the card tests of tests/faults and tests/stages)."""

from __future__ import annotations


def table_rows(tokens) -> list[list[str]]:
    """Each table row of markdown-it's tokens as its cells' literal text."""
    found, row, cell = [], None, None
    for t in tokens:
        if t.type == "tr_open":
            row = []
        elif t.type in ("td_open", "th_open"):
            cell = []
        elif t.type == "inline" and cell is not None:
            cell.append("".join(c.content for c in t.children))
        elif t.type in ("td_close", "th_close"):
            row.append("".join(cell))
            cell = None
        elif t.type == "tr_close":
            found.append(row)
    return found
