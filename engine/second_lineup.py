"""A second line-up that cross-validates the first, as the SignificantOther dataset kept what two VLMs agreed on.

A build may name another line-up's configuration (`second_lineup = "B.toml"`). Its stages run through the same
pipeline and checkpoint as the first's, after them, clip by clip: a stage both line-ups declare with the same
backend and the same inputs has the same checkpoint key, so it is asked once. Its labels become one more label
view (`second_lineup:<name>`) for the cross-validation gate; its model calls stay on the row, their stage named
`second_lineup:<name>/<stage>`, and its statistics are kept under the same names. Only its roles and extra_stages
are read: media settings, gates and everything else are the first line-up's."""

from __future__ import annotations

from pathlib import Path

from gates.cross_validation import SECOND_LINEUP
from schemas.config import ConfigError, EngineConfig
from schemas.gates import LabelView
from schemas.row import CoarseRow

# The second line-up needs its description and labels only: its translation (and any extra stage) is not asked.
SECOND_READERS = ("labels",)


def lineup_name(config: EngineConfig) -> str | None:
    return Path(config.second_lineup).stem if config.second_lineup else None


def second_config(config: EngineConfig) -> EngineConfig | None:
    """The second line-up's configuration (None when the build names none); ConfigError lines prefixed with the
    key that names it."""
    if not config.second_lineup:
        return None
    try:
        second = EngineConfig.from_file(Path(config.second_lineup))
    except ConfigError as exc:
        raise ConfigError([f"second_lineup: {line}" for line in exc.problems]) from None
    if second.second_lineup:
        raise ConfigError(
            [f"second_lineup: {config.second_lineup} names a second line-up of its own; drop its second_lineup key"]
        )
    return second


def prefix(name: str) -> str:
    """What the second line-up's statistics and provenance are named with: `second_lineup:<name>/<stage>`."""
    return f"{SECOND_LINEUP}{name}/"


def attach(row: CoarseRow, other: CoarseRow, name: str, measured: set[str]) -> CoarseRow:
    """The second line-up's row onto the first's: its model calls (the measurements, which both share, left
    out) and its labels as a view. A second line-up that did not finish abstains, saying why."""
    mark = prefix(name)
    row.provenance += [
        call.model_copy(update={"stage": mark + call.stage}) for call in other.provenance if call.stage not in measured
    ]
    labeller = next((c for c in reversed(other.provenance) if c.stage == "labels"), None)
    mine = next((c for c in reversed(row.provenance) if c.stage == "labels"), None)
    # Every answer the labels were built from shared: the view would be the first line-up's labels again.
    same = (
        other.description_en == row.description_en
        and labeller is not None
        and mine is not None
        and labeller.config_hash == mine.config_hash
    )
    problems = [f"{e.stage}: {e.message}" for e in other.errors if not e.message.startswith("skipped:")]
    row.label_views = [v for v in row.label_views if v.source != SECOND_LINEUP + name]
    row.label_views.append(
        LabelView(
            source=SECOND_LINEUP + name,
            labels=other.labels if other.complete else [],
            basis=f"the second line-up {name}'s labels stage: "
            + (f"model {labeller.model}" if labeller else "an annotator not recorded in the provenance")
            + (" (every answer it reads is the first line-up's)" if same else ""),
            independent=not same,
            abstained=None if other.complete else "the second line-up did not finish: " + "; ".join(problems),
        )
    )
    return row
