"""Output: Parquet shards with deterministic names, a `datasets` DatasetDict, and a dataset card.

An export is written whole into a folder of its own, `OUT/.exports/<id>/` (data/, hf/, README.md), sealed
(`data/.export.json` lists its shards, written last), and only then swapped in: `OUT/data` and `OUT/hf`
are symbolic links replaced by a rename each, and `OUT/README.md` is renamed over. A reader sees the
previous complete export or the new one, never a shard without its footer; a build killed before the
swap leaves the previous export as it was.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
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
from schemas.text_clean import remove_control_characters

if TYPE_CHECKING:
    from runtime.outdir import OutputFolder

SPLITS = ("train", "review", "rejected", "failed")
LICENCE = """## Licence

Clips from the MER corpora are under the MER EULA (academic use only, no redistribution); data derived
from them inherits those terms.
"""  # train: complete and passed every gate (or a reviewer accepted it); see gates/run.py for the rest


EXPORTS = ".exports"  # in OUT: one folder per export; only the one swapped in stays
SEAL = ".export.json"  # in data/: the shards of a complete export, with their rows and sizes; written last
SWAPPED = ("data", "hf")  # OUT's links into the current export


def write_manifest(records: Iterable[ClipRecord], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(to_table(sorted(records, key=lambda r: r.name), ClipRecord), partial)
    os.replace(partial, path)


def write_batch_parts(rows: list[CoarseRow], parts_dir: Path, batch: int) -> None:
    """Each batch's rows, ungated; rewritten whole on a re-run, so nothing is ever duplicated."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    part = parts_dir / f"rows-batch-{batch:06d}.parquet"
    tmp = part.with_suffix(".tmp")
    pq.write_table(to_table(rows, CoarseRow), tmp)
    tmp.replace(part)


# An absolute path in a message (`/data/mer/video/x.mp4`, not a URL's `//host/...` nor `1/2`): the file name stays.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\"`,;:()\[\]<>]+/)+([^\s/'\"`,;:()\[\]<>]*)")


def without_local_paths(text: str | None, corpus_root: Path | None) -> str | None:
    """`text` with paths inside the corpus made relative to it and any other absolute path reduced to its
    file name: error messages go into the dataset, and a local path says nothing a reader can use."""
    if not text:
        return text
    if corpus_root is not None:
        text = text.replace(f"{corpus_root}/", "")
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "/", text)


def _publishable(row: CoarseRow, corpus_root: Path | None) -> CoarseRow:
    errors = [e.model_copy(update={"message": without_local_paths(e.message, corpus_root)}) for e in row.errors]
    return row.model_copy(update={"clip_error": without_local_paths(row.clip_error, corpus_root), "errors": errors})


def gate_parts(
    parts: list[Path],
    gated_dir: Path,
    cfg: GatesConfig,
    decisions: dict[str, ReviewDecision],
    corpus_root: Path | None = None,
) -> tuple[dict[str, list[Path]], LengthBounds]:
    """Judge every row and write it to its split. Two streaming passes: the length gate's bounds come
    from the whole corpus's description lengths, so they are read first (one column, not the rows).
    Error messages lose their local paths (without_local_paths)."""
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
        rows = [
            judge(_publishable(CoarseRow.model_validate(r), corpus_root), cfg, bounds)
            for r in pq.read_table(part).to_pylist()
        ]
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


def new_export_dir(out_dir: Path) -> Path:
    """A fresh folder for the next export, beside the current one (same file system: renames are atomic)."""
    folder = out_dir / EXPORTS / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    (folder / "data").mkdir(parents=True)
    return folder


def seal_shards(data_dir: Path) -> None:
    """Mark `data_dir` complete: the list of its shards, each with its rows and size, written last."""
    shards = {
        p.name: {"rows": pq.ParquetFile(p).metadata.num_rows, "bytes": p.stat().st_size}
        for p in sorted(data_dir.glob("*.parquet"))
    }
    partial = data_dir / f"{SEAL}.partial"
    partial.write_text(json.dumps({"shards": shards}, indent=1), encoding="utf-8")
    os.replace(partial, data_dir / SEAL)


def incomplete_export(data_dir: Path) -> str | None:
    """Why the shards in `data_dir` are not a complete export (None when they are): no seal, a shard
    missing, added or of another size than sealed, or one whose footer does not read."""
    try:
        sealed = json.loads((data_dir / SEAL).read_text(encoding="utf-8"))["shards"]
    except FileNotFoundError:
        return f"{data_dir} has no {SEAL}: the export was not completed"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{data_dir / SEAL} does not read ({type(exc).__name__})"
    present = {p.name: p for p in data_dir.glob("*.parquet")}
    if set(present) != set(sealed):
        odd = sorted(set(present) ^ set(sealed))
        return f"{data_dir}: shards {odd} are not the sealed export's"
    for name, path in sorted(present.items()):
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException) as exc:
            return f"{path} is not a complete Parquet file ({exc})"
        if path.stat().st_size != sealed[name]["bytes"] or rows != sealed[name]["rows"]:
            return f"{path} is not the shard its export sealed (changed since)"
    return None


def swap_in(export_dir: Path, folder: OutputFolder) -> None:
    """Make `export_dir` OUT's export: OUT/data and OUT/hf become links into it (each replaced by one
    rename), OUT/README.md is renamed over, then every other export folder goes."""
    out_dir = folder.path
    for name in SWAPPED:
        target = out_dir / name
        if target.is_dir() and not target.is_symlink():
            # An export of a version before .exports: moved aside whole (its own folder is then removed).
            folder.claim(name)
            os.replace(target, out_dir / EXPORTS / f"retired-{name}-{export_dir.name}")
        link = out_dir / f".{name}.swap"
        link.unlink(missing_ok=True)
        os.symlink(Path(EXPORTS) / export_dir.name / name, link, target_is_directory=True)
        os.replace(link, target)
    folder.write_text("README.md", (export_dir / "README.md").read_text(encoding="utf-8"))
    for old in (out_dir / EXPORTS).iterdir():
        if old != export_dir:
            shutil.rmtree(old, ignore_errors=True)


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
    servers: defaultdict[str, set[str]] = defaultdict(set)
    for split, files in parts.items():
        counts[split] = 0
        for part in files:
            table = pq.read_table(part, columns=["clip_status", "errors", "labels", "gates", "provenance"])
            if split == "train":  # what answered the published rows
                for calls in table.column("provenance").to_pylist():
                    for call in calls:
                        if call.get("attempts"):
                            servers[call["model"]].add(call.get("server_version") or "unknown")
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
        "server_versions": {model: sorted(versions) for model, versions in sorted(servers.items())},
    }


def _reason_kind(reason: str) -> str:
    """The reason up to its first measurement, so that counts group alike failures."""
    return reason.split(" (")[0].split(":")[0][:80]


# Markdown characters that start a link, an image, code, emphasis, a table cell, strikethrough or math
# (the Hub renders $...$); `_` only where it can emphasise (CommonMark ignores it inside a word, so
# `audio_clue@3` stays as it reads). No well-kept library escapes Markdown (they render it), hence this.
_MARKDOWN_ACTIVE = re.compile(r"[\\`*\[\]!|~$]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def markdown_text(value: object) -> str:
    """`value` (a label, a reason, a model or corpus name: anything a user or a model made) as literal
    text in the card, on one line: no HTML, link, image, code span or table cell can come out of it."""
    text, _ = remove_control_characters(" ".join(str(value).split()))
    text = _MARKDOWN_ACTIVE.sub(lambda m: "\\" + m.group(), html.escape(text, quote=False))
    return text.replace("://", ":&#47;&#47;")  # GitHub-flavoured renderers turn a bare URL into a link


def corpus_name(corpus: str | Path) -> str:
    """How the card names the corpus: its folder's name, never its local path."""
    return Path(corpus).name or str(corpus)


def _cells(*values: object) -> str:
    return "| " + " | ".join(markdown_text(v) for v in values) + " |"


def stage_cost_table(stages: dict[str, dict]) -> str:
    keys = tuple(StageStats.model_fields)
    head = "| stage | " + " | ".join(k.replace("_", " ") for k in keys) + " |"
    rule = "|---" * (len(keys) + 1) + "|"
    lines = [_cells(stage, *(v[k] for k in keys)) for stage, v in stages.items()]
    return "\n".join([head, rule, *(lines or ["| (no stage ran) |" + " 0 |" * len(keys)])])


def lineup_table(lineup: dict) -> str:
    return "\n".join(_cells(role, ", ".join(v["models"]), v["prompt"], v["media"]) for role, v in lineup.items())


def top_labels_text(top: list) -> str:
    return ", ".join(f"{markdown_text(w)} ({n})" for w, n in top) or "(none)"


def summary_json(summary: dict) -> str:
    """The summary as JSON for a fenced block: a backtick in a label cannot close the fence."""
    text = json.dumps(summary, ensure_ascii=False, indent=1)
    return text.replace("`", "\\u0060").replace("<", "\\u003c")  # only inside JSON strings: still the same JSON


def dataset_card(
    summary: dict, lineup: dict, corpus: str, config_fingerprint: str, stages: dict[str, dict] | None = None
) -> str:
    """The local card: the whole build (every split's counts, the gates' commonest reasons, the labels of
    every row). Everything user- or model-made in it is escaped (markdown_text); the corpus is named by
    its folder. What push publishes is derived from the train rows only (flows/publish.py)."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = "\n".join(
        ["---", "configs:", "- config_name: default", "  data_files:"]
        + [f"  - split: {split}\n    path: data/{split}-*.parquet" for split in summary["splits"]]
        + ["license: other", "license_name: mer-eula", "task_categories:", "- video-classification", "---"]
    )
    rows = "\n".join(f"| {split} | {n} |" for split, n in summary["splits"].items())
    roles = lineup_table(lineup)
    status = "\n".join(_cells(k, v) for k, v in sorted(summary["clip_status"].items()))
    errors = (
        "\n".join(_cells(k, v) for k, v in sorted(summary["rows_with_errors_by_stage"].items())) or "| (none) | 0 |"
    )
    top = top_labels_text(summary["top_labels"])
    gates = (
        "\n".join(
            _cells(g, v["judged"], v["passed"], f"{v['pass_rate']:.1%}") for g, v in summary.get("gates", {}).items()
        )
        or "| (no complete rows) | 0 | 0 | - |"
    )
    stage_costs = stage_cost_table(stages or {})
    versions = summary.get("server_versions", {})
    served_by = "Server versions that answered the published rows (vLLM's `/version`): " + (
        "; ".join(f"{markdown_text(m)}: {markdown_text(', '.join(v))}" for m, v in versions.items()) or "none"
    )
    failures = "\n".join(_cells(k, n) for k, n in summary.get("gate_failures", {}).items()) or "| (none) | 0 |"
    corpus, config_fingerprint = markdown_text(corpus_name(corpus)), markdown_text(config_fingerprint)
    return f"""{header}

# Coarse emotion descriptions (EMER-Coarse style)

Built {now} from the corpus {corpus} by the build-coarse pipeline (config fingerprint {config_fingerprint}).
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

{served_by}

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
{summary_json(summary)}
```
"""
