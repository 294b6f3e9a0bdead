"""Length: descriptions in either tail of the length histogram are cut off or rambling.

Bounds are data-driven: the configured quantiles of the corpus's own description lengths (English
words), clamped by fixed outer bounds that also serve alone while the corpus is too small."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gates.base import LengthBounds, verdict, words
from schemas.config import LengthGate
from schemas.gates import GateVerdict
from schemas.row import CoarseRow


def length_bounds(word_counts: Iterable[int], cfg: LengthGate) -> LengthBounds:
    counts = np.fromiter(word_counts, dtype=np.int64)
    if counts.size < cfg.min_rows_for_quantiles:
        return LengthBounds(
            cfg.min_words,
            cfg.max_words,
            f"fixed (only {counts.size} descriptions, quantiles need {cfg.min_rows_for_quantiles})",
        )
    low = max(cfg.min_words, int(np.floor(np.quantile(counts, cfg.lower_quantile))))
    high = min(cfg.max_words, int(np.ceil(np.quantile(counts, cfg.upper_quantile))))
    return LengthBounds(
        low, max(low, high), f"quantiles {cfg.lower_quantile}/{cfg.upper_quantile} of {counts.size} descriptions"
    )


def check(row: CoarseRow, bounds: LengthBounds) -> GateVerdict:
    n = words(row.description_en)
    problems = []
    if n < bounds.low:
        problems.append(
            f"description has {n} words, below {bounds.low} ({bounds.source}): cut off or empty of reasoning"
        )
    elif n > bounds.high:
        problems.append(f"description has {n} words, above {bounds.high} ({bounds.source})")
    return verdict(
        "length",
        problems,
        f"{n} words within [{bounds.low}, {bounds.high}] ({bounds.source})",
        score=n,
        threshold=bounds.low if n < bounds.low else bounds.high,
    )
