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
import yaml
from datasets import Dataset, DatasetDict

from gates.base import LengthBounds
from gates.length import length_bounds
from gates.run import judge, route
from schemas.arrow import arrow_schema, features, to_table
from schemas.config import GatesConfig
from schemas.manifest import ClipRecord
from schemas.review import ReviewDecision
from schemas.row import CoarseRow
from schemas.signals import CorpusNorms
from schemas.stats import StageStats
from schemas.text_clean import remove_control_characters
from stages.card_plots import durations_of, plots_markdown, write_plots
from stages.tiers import tier_counts

if TYPE_CHECKING:
    from runtime.outdir import OutputFolder

SPLITS = ("train", "review", "rejected", "failed")
LICENCE = """## Licence

Clips from the MER corpora are under the MER EULA (academic use only, no redistribution); data derived
from them inherits those terms.
"""  # train: complete and passed every gate (or a reviewer accepted it); see gates/run.py for the rest


EXPORTS = ".exports"  # in OUT: one folder per export; only the one swapped in stays
SEAL = ".export.json"  # in data/: the shards of a complete export, with their rows and sizes; written last
SWAPPED = ("data", "hf", "plots")  # OUT's links into the current export (plots/: the card's PNGs)


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
    norms: CorpusNorms | None = None,
) -> tuple[dict[str, list[Path]], LengthBounds]:
    """Judge every row and write it to its split. Two streaming passes: the length gate's bounds come
    from the whole corpus's description lengths, so they are read first (one column, not the rows).
    Error messages lose their local paths (without_local_paths). `norms`: the corpus's acoustic norms, which
    the gates judge each voice against (annotators/signals/acoustics.py)."""
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
            judge(_publishable(CoarseRow.model_validate(r), corpus_root), cfg, bounds, norms)
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
    errors: Counter[str] = Counter()  # rows with an error at the stage
    error_count: Counter[str] = Counter()  # errors at the stage (a row can have several)
    rows_with_errors = 0
    reviewed: Counter[str] = Counter()  # a reviewer's decisions, by outcome
    labels: Counter[str] = Counter()
    gate_runs: Counter[str] = Counter()
    gate_passes: Counter[str] = Counter()
    gate_reasons: Counter[str] = Counter()
    servers: defaultdict[str, set[str]] = defaultdict(set)
    for split, files in parts.items():
        counts[split] = 0
        for part in files:
            table = pq.read_table(part, columns=["clip_status", "errors", "labels", "gates", "provenance", "review"])
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
                error_count.update(e["stage"] for e in errs)
                rows_with_errors += bool(errs)
            for decision in table.column("review").to_pylist():
                if decision is not None:
                    reviewed["accepted" if decision["accepted"] else "rejected"] += 1
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
        "errors_by_stage": dict(error_count),
        "rows_with_errors": rows_with_errors,
        "review": {
            "accepted": reviewed["accepted"],
            "rejected": reviewed["rejected"],
            "waiting": counts.get("review", 0),
        },
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


def _norms_line(norms: dict | None) -> str:
    return markdown_text(norms["source"]) if norms else "n/a"  # the source names its clip count


# How to cite the method this dataset follows (titles and venues as their authors list them).
CITATION = """## Citation

The rows follow the EMER-Coarse method of AffectGPT; the `plus` tier follows MER-Caption+'s stricter
filtering. Please cite:

```bibtex
@article{lian2024affectgpt,
  title={AffectGPT: Dataset and Framework for Explainable Multimodal Emotion Recognition},
  author={Lian, Zheng and Sun, Haiyang and Sun, Licai and Yi, Jiangyan and Liu, Bin and Tao, Jianhua},
  journal={arXiv preprint arXiv:2407.07653},
  year={2024}
}

@article{lian2023explainable,
  title={Explainable Multimodal Emotion Recognition},
  author={Lian, Zheng and Sun, Haiyang and Sun, Licai and Gu, Hao and Wen, Zhuofan and Zhang, Siyuan and others},
  journal={arXiv preprint arXiv:2306.15401},
  year={2023}
}

@inproceedings{lian2025affectgpt,
  title={AffectGPT: A New Dataset, Model, and Benchmark for Emotion Understanding with Multimodal Large
         Language Models},
  author={Lian, Zheng and Chen, Haoyu and Chen, Lan and Sun, Haiyang and Sun, Licai and Ren, Yong and others},
  booktitle={International Conference on Machine Learning (ICML)},
  year={2025}
}
```
"""

_EXAMPLE_CHARS = 600  # a description can be long: the example shows its start


def columns_table() -> str:
    """One line per column, from the row schema's own field descriptions (schemas/row.py)."""
    lines = ["| column | what |", "|---|---|"]
    for name, field in CoarseRow.model_fields.items():
        lines.append(_cells(name, field.description or ""))
    return "\n".join(lines)


def _clue_text(clue: dict | None) -> str:
    if not clue:
        return ""
    reply = clue.get("with_subtitle") or clue.get("without_subtitle") or {}
    states = ", ".join(reply.get("emotional_states") or [])
    return (reply.get("clues") or "") + (f" (states: {states})" if states else "")


def example_row(parts: dict[str, list[Path]], splits: Iterable[str] = ("train", "review")) -> dict | None:
    """The first row by name of the first of `splits` that has rows, as the card shows it (None: no row)."""
    columns = ["name", "subtitle_english", "subtitle_chinese", "audio_clue", "visual_clue", "subtitle_analysis"]
    columns += ["description_en", "description_zh", "labels", "complete"]
    for split in splits:
        rows = [r for p in parts.get(split, []) for r in pq.read_table(p, columns=columns).to_pylist()]
        rows = [r for r in rows if r["complete"]]
        if rows:
            return min(rows, key=lambda r: r["name"]) | {"split": split}
    return None


def example_table(example: dict | None) -> str:
    if example is None:
        return "No complete row to show."

    def cut(text: str | None) -> str:
        text = " ".join((text or "").split())
        return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 1] + "…"

    fields = {
        "name": example["name"],
        "subtitle": example.get("subtitle_english") or example.get("subtitle_chinese") or "",
        "audio_clue": _clue_text(example.get("audio_clue")) or "(no audio clue)",
        "visual_clue": _clue_text(example.get("visual_clue")),
        "subtitle_analysis": example.get("subtitle_analysis") or "",
        "description_en": example.get("description_en"),
        "description_zh": example.get("description_zh"),
        "labels": ", ".join(example.get("labels") or []) or "(none)",
    }
    where = "" if example.get("split") == "train" else f" (from `{example['split']}`: no row is in `train` yet)"
    lines = [f"One row{where}:", "", "| column | value |", "|---|---|"]
    return "\n".join(lines + [_cells(k, cut(v)) for k, v in fields.items()])


def _python_string(text: str) -> str:
    """`text` as a Python string literal for a fenced code block: a backtick in it cannot close the fence."""
    return json.dumps(text, ensure_ascii=False).replace("`", "\\u0060")  # still the same string in Python


def load_section(where: str, configs: dict[str, list[str]], *, local: bool) -> str:
    """How to load the dataset: `where` is what load_dataset takes (a repo id, or this folder's path)."""
    first, *others = configs or {"default": ["train"]}
    split = (configs or {}).get(first, ["train"])[0] if (configs or {}).get(first) else "train"
    path = _python_string(where)
    lines = ["```python", "from datasets import load_dataset", "", f"ds = load_dataset({path})"]
    lines.append(f'rows = ds["{split}"]  # splits: {", ".join(configs.get(first, []) or ["(none)"])}')
    for name in others:
        lines.append(f'{name} = load_dataset({path}, "{name}")["{split}"]  # the {name} tier')
    if local:
        lines += ["", "# or the same splits as saved by the build:", "from datasets import load_from_disk", ""]
        lines.append(f"ds = load_from_disk({_python_string(where + '/hf')})")
    lines.append("```")
    intro = (
        "The YAML header above lists the splits that have rows; `load_dataset` reads them from `data/`."
        if local
        else "Every config in the YAML header above is one tier; `load_dataset` reads the default one."
    )
    return "## How to load\n\n" + intro + "\n\n" + "\n".join(lines) + "\n"


def tiers_table(tiers: dict | None) -> str:
    """The tier sizes and what chose them (summary["tiers"], stages/tiers.py tier_summary)."""
    if not tiers:
        return "| coarse | (the `train` split) | complete, every gate passed or a reviewer accepted |"
    plus = tiers.get("plus", {})
    rule = "; ".join(
        [f"{g} ≥ {v:g}" for g, v in plus.get("min_score", {}).items()]
        + [f"{g} ≤ {v:g}" for g, v in plus.get("max_score", {}).items()]
    )
    unscored = "in" if plus.get("unscored") == "in" else "out"
    held = ", ".join(f"{markdown_text(g)} ({n})" for g, n in sorted(plus.get("held_back_by", {}).items()))
    return "\n".join(
        [
            _cells(
                "coarse",
                tiers.get("coarse", {}).get("rows", 0),
                "the train split: complete, every gate passed or a reviewer accepted",
            ),
            _cells(
                "plus",
                plus.get("rows", 0),
                f"coarse rows whose gate scores reach {rule or '(no threshold)'}; "
                f"a gate with no score: {unscored}" + (f"; coarse rows left out by {held}" if held else ""),
            ),
        ]
    )


def config_header(splits_by_config: dict[str, list[tuple[str, str]]], default: str | None = None) -> str:
    """The card's YAML: one config per entry, each listing only splits that have rows (`load_dataset`
    refuses a split whose files hold none), and the licence."""
    meta: dict = {}
    configs = [
        {
            "config_name": name,
            **({"default": True} if name == default and len(splits_by_config) > 1 else {}),
            "data_files": [{"split": split, "path": path} for split, path in files],
        }
        for name, files in splits_by_config.items()
        if files
    ]
    if configs:
        meta["configs"] = configs
    meta |= {
        "license": "other",
        "license_name": "mer-eula",
        "language": ["en", "zh"],
        "task_categories": ["video-classification"],
        "tags": ["emotion", "explainable-emotion-recognition", "multimodal"],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---"


def _corpus_text(corpus: str, status: dict[str, int]) -> str:
    missing = status.get("missing", 0)
    clips = sum(status.values()) - missing
    rows = f", and {missing} subtitle row{'s' * (missing != 1)} without a clip" if missing else ""
    return f"{markdown_text(corpus_name(corpus))} ({clips} clip{'s' * (clips != 1)}{rows})"


def review_text(review: dict | None) -> str:
    review = review or {}
    accepted, rejected, waiting = (review.get(k, 0) for k in ("accepted", "rejected", "waiting"))
    return (
        f"Reviewers accepted {accepted} row{'s' * (accepted != 1)} (in `train`, with the reviewer's labels where "
        f"given) and rejected {rejected} (in `rejected`); {waiting} wait{'s' * (waiting == 1)} for review "
        "(`review`)."
    )


def dataset_card(
    summary: dict,
    lineup: dict,
    corpus: str,
    config_fingerprint: str,
    stages: dict[str, dict] | None = None,
    *,
    plots: list[str] | None = None,
    example: dict | None = None,
    load_as: str = "this-folder",
) -> str:
    """The local card: the whole build (every split's counts, the tiers, the review outcome, the gates'
    commonest reasons, the labels of every row), how to load it, its columns and one example. Everything
    user- or model-made in it is escaped (markdown_text); the corpus is named by its folder and clip count.
    What push publishes is derived from the train rows only (flows/publish.py)."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with_rows = [split for split, n in summary["splits"].items() if n]
    header = config_header({"default": [(split, f"data/{split}-*.parquet") for split in with_rows]})
    rows = "\n".join(f"| {split} | {n} |" for split, n in summary["splits"].items())
    roles = lineup_table(lineup)
    status = "\n".join(_cells(k, v) for k, v in sorted(summary["clip_status"].items()))
    by_rows, by_errors = summary["rows_with_errors_by_stage"], summary.get("errors_by_stage", {})
    errors = "\n".join(_cells(k, v, by_errors.get(k, v)) for k, v in sorted(by_rows.items())) or "| (none) | 0 | 0 |"
    n_rows = summary.get("rows_with_errors", max(by_rows.values(), default=0))
    n_errors = sum(by_errors.values()) if by_errors else sum(by_rows.values())
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
    corpus_text, config_fingerprint = _corpus_text(corpus, summary["clip_status"]), markdown_text(config_fingerprint)
    pictures = plots_markdown(plots or []) or "(no plots were drawn)"
    loading = load_section(f"path/to/{load_as}", {"default": with_rows}, local=True)
    return f"""{header}

# Coarse emotion descriptions (EMER-Coarse style)

Built {now} from the corpus {corpus_text} by the build-coarse pipeline (config fingerprint
{config_fingerprint}). Each row carries audio and visual emotion clues, an emotion-reasoning description in
English and Chinese, open-vocabulary emotion labels and per-stage provenance (prompt version, model,
sampling, server).

{loading}
## At a glance

{pictures}

## Splits

| split | rows |
|---|---|
{rows}

`train` holds complete rows that passed every quality gate, or that a reviewer accepted; `review` holds
complete rows a gate held back, waiting for human review; `rejected` holds rows a reviewer turned down;
`failed` holds every other clip, with the reasons in `errors`.

## Tiers

| tier | rows | rule |
|---|---|---|
{tiers_table(summary.get("tiers"))}

`emer-coarse push --tier plus` publishes the plus tier as its own config; `[tiers.plus]` in the
configuration sets its thresholds (a change re-chooses it from the stored scores, with no model call).

## Review

{review_text(summary.get("review"))}

## Quality gates

Every complete row carries one verdict per gate (`gates`: gate, passed, score, threshold, reason) and
the labels of each independent annotator (`label_views`). Length bounds: {summary.get("length_bounds", "n/a")}.
Voices are judged relative to the corpus's acoustic norms: {_norms_line(summary.get("corpus_norms"))}.

| gate | judged | passed | pass rate |
|---|---|---|---|
{gates}

Most common reasons a gate held a row back:

| gate: reason | rows |
|---|---|
{failures}

## Columns

{columns_table()}

## Example

{example_table(example)}

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

## Errors, by stage

{n_rows} row{"s" * (n_rows != 1)} carry an error or a skip note ({n_errors} in all; one row can carry several, at
different stages). Per stage:

| stage | rows | errors |
|---|---|---|
{errors}

Most frequent labels: {top}

{CITATION}
{LICENCE}"""


def write_card(
    export_dir: Path,
    summary: dict,
    lineup: dict,
    corpus: str,
    config_fingerprint: str,
    stages: dict[str, dict],
    parts: dict[str, list[Path]],
    load_as: str,
) -> Path:
    """Draw the card's plots into `export_dir/plots/` and write the card beside them (`README.md`)."""
    held_back = {s: n for s, n in summary["splits"].items() if s != "train" and n}
    plots = write_plots(
        export_dir,
        top_labels=summary["top_labels"],
        tiers=tier_counts(summary.get("tiers") or {"coarse": {"rows": summary["splits"].get("train", 0)}}),
        held_back=held_back,
        durations=durations_of(p for files in parts.values() for p in files),
        scope="every row of the build",
        gates=summary.get("gates", {}),
        failures=summary.get("gate_failures", {}),
    )
    card = dataset_card(
        summary, lineup, corpus, config_fingerprint, stages, plots=plots, example=example_row(parts), load_as=load_as
    )
    path = export_dir / "README.md"
    path.write_text(card, encoding="utf-8")
    return path
