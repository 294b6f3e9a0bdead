"""Output: Parquet shards with deterministic names, a `datasets` DatasetDict, and a dataset card."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict

from gates.base import LengthBounds
from gates.length import length_bounds
from gates.run import judge, route
from schemas.arrow import arrow_schema, features, to_table
from schemas.config import GatesConfig
from schemas.manifest import ClipRecord
from schemas.review import ReviewDecision
from schemas.row import CoarseRow
from schemas.stats import StageStats

SPLITS = ("train", "review", "rejected", "failed")
LICENCE = """## Licence

Clips from the MER corpora are under the MER EULA (academic use only, no redistribution); data derived
from them inherits those terms.
"""  # train: complete and passed every gate (or a reviewer accepted it); see gates/run.py for the rest


def write_manifest(records: Iterable[ClipRecord], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_table(sorted(records, key=lambda r: r.name), ClipRecord), path)


def write_batch_parts(rows: list[CoarseRow], parts_dir: Path, batch: int) -> None:
    """Each batch's rows, ungated; rewritten whole on a re-run, so nothing is ever duplicated."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    part = parts_dir / f"rows-batch-{batch:06d}.parquet"
    tmp = part.with_suffix(".tmp")
    pq.write_table(to_table(rows, CoarseRow), tmp)
    tmp.replace(part)


def gate_parts(
    parts: list[Path], gated_dir: Path, cfg: GatesConfig, decisions: dict[str, ReviewDecision]
) -> tuple[dict[str, list[Path]], LengthBounds]:
    """Judge every row and write it to its split. Two streaming passes: the length gate's bounds come
    from the whole corpus's description lengths, so they are read first (one column, not the rows)."""
    counts = []
    for part in parts:
        table = pq.read_table(part, columns=["complete", "description_en"])
        counts += [
            len((d or "").split())
            for c, d in zip(table.column("complete").to_pylist(), table.column("description_en").to_pylist())
            if c
        ]
    bounds = length_bounds(counts, cfg.length)
    gated_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {split: [] for split in SPLITS}
    for part in parts:
        rows = [judge(CoarseRow.model_validate(r), cfg, bounds) for r in pq.read_table(part).to_pylist()]
        routed = {split: [] for split in SPLITS}
        for row in rows:
            routed[route(row, decisions)].append(row)
        for split, chosen in routed.items():
            path = gated_dir / f"{split}-{part.stem}.parquet"
            pq.write_table(to_table(chosen, CoarseRow), path)
            out[split].append(path)
    return out, bounds


def write_shards(parts: list[Path], data_dir: Path, split: str, shard_rows: int) -> list[Path]:
    """Stream parts into shards of `shard_rows` (never the whole split in memory)."""
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    n_shards = max(1, -(-total // shard_rows))
    for stale in data_dir.glob(f"{split}-*.parquet"):
        stale.unlink()
    schema = arrow_schema(CoarseRow)
    paths = [data_dir / f"{split}-{i:05d}-of-{n_shards:05d}.parquet" for i in range(n_shards)]
    shard, writer, in_shard = 0, pq.ParquetWriter(paths[0], schema), 0
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=1024):
            while batch.num_rows:
                take = batch.slice(0, shard_rows - in_shard)
                writer.write_batch(take)
                in_shard += take.num_rows
                batch = batch.slice(take.num_rows)
                if in_shard == shard_rows and shard + 1 < n_shards:
                    writer.close()
                    shard, in_shard = shard + 1, 0
                    writer = pq.ParquetWriter(paths[shard], schema)
    writer.close()
    return paths


def build_dataset_dict(shards: dict[str, list[Path]], cache_dir: Path) -> DatasetDict:
    feats = features(CoarseRow)

    def split(files: list[Path]) -> Dataset:
        if not any(pq.ParquetFile(p).metadata.num_rows for p in files):
            return Dataset.from_dict(
                {name: [] for name in feats}, features=feats
            )  # from_parquet refuses an empty split
        return Dataset.from_parquet([str(p) for p in files], features=feats, cache_dir=str(cache_dir))

    return DatasetDict({name: split(files) for name, files in shards.items()})


def summarise(parts: dict[str, list[Path]]) -> dict:
    """Counts for the card, read back from the parts so they describe exactly what was written."""
    counts: dict[str, int] = {}
    status: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    gate_runs: Counter[str] = Counter()
    gate_passes: Counter[str] = Counter()
    gate_reasons: Counter[str] = Counter()
    for split, files in parts.items():
        counts[split] = 0
        for part in files:
            table = pq.read_table(part, columns=["clip_status", "errors", "labels", "gates"])
            for verdicts in table.column("gates").to_pylist():
                for v in verdicts:
                    gate_runs[v["gate"]] += 1
                    gate_passes[v["gate"]] += v["passed"]
                    if not v["passed"]:
                        gate_reasons[f"{v['gate']}: {_reason_kind(v['reason'])}"] += 1
            counts[split] += table.num_rows
            status.update(table.column("clip_status").to_pylist())
            for errs in table.column("errors").to_pylist():
                errors.update({e["stage"] for e in errs})
            for ls in table.column("labels").to_pylist():
                labels.update(ls)
    gates = {
        g: {"judged": n, "passed": gate_passes[g], "pass_rate": round(gate_passes[g] / n, 4)}
        for g, n in gate_runs.items()
    }
    return {
        "splits": counts,
        "clip_status": dict(status),
        "rows_with_errors_by_stage": dict(errors),
        "gates": gates,
        "gate_failures": dict(gate_reasons.most_common(20)),
        "top_labels": labels.most_common(20),
    }


def _reason_kind(reason: str) -> str:
    """The reason up to its first measurement, so that counts group alike failures."""
    return reason.split(" (")[0].split(":")[0][:80]


def stage_cost_table(stages: dict[str, dict]) -> str:
    keys = tuple(StageStats.model_fields)
    head = "| stage | " + " | ".join(k.replace("_", " ") for k in keys) + " |"
    rule = "|---" * (len(keys) + 1) + "|"
    lines = [f"| {stage} | " + " | ".join(str(v[k]) for k in keys) + " |" for stage, v in stages.items()]
    return "\n".join([head, rule, *(lines or ["| (no stage ran) |" + " 0 |" * len(keys)])])


def dataset_card(
    summary: dict, lineup: dict, corpus: str, config_fingerprint: str, stages: dict[str, dict] | None = None
) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = "\n".join(
        ["---", "configs:", "- config_name: default", "  data_files:"]
        + [f"  - split: {split}\n    path: data/{split}-*.parquet" for split in summary["splits"]]
        + ["license: other", "license_name: mer-eula", "task_categories:", "- video-classification", "---"]
    )
    rows = "\n".join(f"| {split} | {n} |" for split, n in summary["splits"].items())
    roles = "\n".join(
        f"| {role} | {', '.join(v['models'])} | {v['prompt']} | {v['media']} |" for role, v in lineup.items()
    )
    status = "\n".join(f"| {k} | {v} |" for k, v in sorted(summary["clip_status"].items()))
    errors = (
        "\n".join(f"| {k} | {v} |" for k, v in sorted(summary["rows_with_errors_by_stage"].items()))
        or "| (none) | 0 |"
    )
    top = ", ".join(f"{w} ({n})" for w, n in summary["top_labels"]) or "(none)"
    gates = (
        "\n".join(
            f"| {g} | {v['judged']} | {v['passed']} | {v['pass_rate']:.1%} |"
            for g, v in summary.get("gates", {}).items()
        )
        or "| (no complete rows) | 0 | 0 | - |"
    )
    stage_costs = stage_cost_table(stages or {})
    failures = "\n".join(f"| {k} | {n} |" for k, n in summary.get("gate_failures", {}).items()) or "| (none) | 0 |"
    return f"""{header}

# Coarse emotion descriptions (EMER-Coarse style)

Built {now} from `{corpus}` by the build-coarse pipeline (config fingerprint `{config_fingerprint}`).
Each row carries audio and visual emotion clues, an emotion-reasoning description in English and
Chinese, open-vocabulary emotion labels and per-stage provenance (prompt version, model, sampling, server).

## Splits

| split | rows |
|---|---|
{rows}

`train` holds complete rows that passed every quality gate, or that a reviewer accepted; `review` holds
complete rows a gate held back, waiting for human review; `rejected` holds rows a reviewer turned down;
`failed` holds every other clip, with the reasons in `errors`.

## Quality gates

Every complete row carries one verdict per gate (`gates`: gate, passed, score, threshold, reason) and
the labels of each independent annotator (`label_views`). Length bounds: {summary.get("length_bounds", "n/a")}.

| gate | judged | passed | pass rate |
|---|---|---|---|
{gates}

Most common reasons a gate held a row back:

| gate: reason | rows |
|---|---|
{failures}

## Model line-up

| role | models | prompt | media |
|---|---|---|---|
{roles}

## What each stage cost

In the run that wrote this export (a stage's seconds overlap across clips; hits were answered before):

{stage_costs}

## Clips by status

| status | clips |
|---|---|
{status}

## Rows with errors, by stage

| stage | rows |
|---|---|
{errors}

Most frequent labels: {top}

{LICENCE}
```json
{json.dumps(summary, ensure_ascii=False, indent=1)}
```
"""
