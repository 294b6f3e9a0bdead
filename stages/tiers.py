"""Quality tiers of the published rows: `coarse` is the corpus (the `train` split: complete, and every gate
passed or a reviewer accepted), `plus` the subset whose stored gate scores clear the stricter thresholds of
`[tiers.plus]` (schemas/config.py PlusTier). Tiers read only what every row already carries (`accepted`,
`gates[].score`), so choosing or re-choosing one never asks a model anything.

A build records the thresholds it used beside the counts (build.json `tiers`); `push` and the training
exports choose the plus rows with those (`recorded_tiers`), so what they publish is what the card counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow.parquet as pq

from schemas.config import TIERS, EngineConfig, TiersConfig
from schemas.gates import GateVerdict
from schemas.row import CoarseRow


class UnknownTier(ValueError):
    pass


def _tiers(cfg: TiersConfig | EngineConfig | None) -> TiersConfig:
    if cfg is None:
        return TiersConfig()
    return cfg.tiers if isinstance(cfg, EngineConfig) else cfg


def _field(verdict: GateVerdict | Mapping, name: str):
    return verdict[name] if isinstance(verdict, Mapping) else getattr(verdict, name)


def misses(
    accepted: bool, gates: Iterable[GateVerdict | Mapping], tier: str, cfg: TiersConfig | EngineConfig | None = None
) -> list[str]:
    """Why a row (its `accepted` flag and gate verdicts) is not in `tier`; empty when it is."""
    if tier not in TIERS:
        raise UnknownTier(f"no tier named {tier!r}; the tiers are {', '.join(TIERS)}")
    if not accepted:
        return ["not in the corpus (train)"]
    if tier == "coarse":
        return []
    plus = _tiers(cfg).plus
    scores = {_field(v, "gate"): _field(v, "score") for v in gates}
    out = []
    for bound, limits in (("min", plus.min_score), ("max", plus.max_score)):
        for gate, limit in limits.items():
            if gate not in scores:  # the build did not run this gate: nothing to be stricter about
                continue
            score = scores[gate]
            if score is None:
                if plus.unscored == "out":
                    out.append(f"{gate}: no score")
            elif (score < limit) if bound == "min" else (score > limit):
                out.append(f"{gate}: {score:g} {'<' if bound == 'min' else '>'} {limit:g}")
    return out


def in_tier(row: CoarseRow, tier: str, cfg: TiersConfig | EngineConfig | None = None) -> bool:
    """Whether `row` belongs to `tier` ("coarse" or "plus") under the thresholds of `cfg` (a TiersConfig or
    an EngineConfig; default: the default thresholds). Every plus row is a coarse row."""
    return not misses(row.accepted, row.gates, tier, cfg)


def tier_summary(train_parts: Iterable[Path], cfg: TiersConfig | EngineConfig | None = None) -> dict:
    """Rows per tier in the train parts or shards, the plus thresholds that chose them, and the commonest
    reasons a corpus row is not plus: what build.json and the card report, and what push re-applies."""
    tiers = _tiers(cfg)
    rows: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for part in train_parts:
        table = pq.read_table(part, columns=["accepted", "gates"])
        for accepted, gates in zip(table.column("accepted").to_pylist(), table.column("gates").to_pylist()):
            for tier in TIERS:
                missed = misses(bool(accepted), gates or [], tier, tiers)
                rows[tier] += not missed
                if tier == "plus" and accepted:
                    reasons.update(_kind(m) for m in missed)
    return {
        "coarse": {"rows": rows["coarse"]},
        "plus": {"rows": rows["plus"], **tiers.plus.model_dump(mode="json"), "held_back_by": dict(reasons)},
    }


def _kind(miss: str) -> str:
    """'av_match: 1.2 < 1.5' -> 'av_match < 1.5': misses of one threshold counted together."""
    gate, _, said = miss.partition(": ")
    parts = said.split(" ")
    return f"{gate} {parts[1]} {parts[2]}" if len(parts) == 3 and parts[1] in "<>" else miss


def tier_counts(summary_tiers: Mapping) -> dict[str, int]:
    """{"coarse": n, "plus": m} from a tier_summary (as build.json holds it)."""
    return {tier: int(summary_tiers.get(tier, {}).get("rows", 0)) for tier in TIERS}


def recorded_tiers(build: Mapping | Path) -> TiersConfig | None:
    """The thresholds a build chose its tiers with (build.json `tiers`, or the dict read from it); None when
    the build recorded none (a build of a version before tiers)."""
    if isinstance(build, Path):
        try:
            build = json.loads((build / "build.json" if build.is_dir() else build).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    plus = (build.get("tiers") or {}).get("plus") if isinstance(build, Mapping) else None
    if not isinstance(plus, Mapping):
        return None
    fields = {k: plus[k] for k in ("min_score", "max_score", "unscored") if k in plus}
    return TiersConfig.model_validate({"plus": fields})
