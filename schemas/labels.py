"""Label normalisation shared by the labels stage, the gates and the metrics: one spelling of a label."""

from __future__ import annotations


def normalise_labels(labels: list[str]) -> list[str]:
    """Lower-case, trimmed, de-duplicated in order; the EMER metric compares lower-case words."""
    seen: dict[str, None] = {}
    for label in labels:
        word = " ".join(label.strip().strip("'\".,;").lower().split())
        if word:
            seen.setdefault(word, None)
    return list(seen)
