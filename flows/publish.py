"""Publish a built dataset to the Hugging Face Hub: the gated rows and a dataset card, nothing else.

`stage` copies exactly what will be uploaded into a folder of its own (by default `OUT/.push/`):

- `data/train-NNNNN-of-NNNNN.parquet` (the `coarse` tier, `--tier coarse`, the default): the `train` split,
  the rows in the corpus (complete, and every quality gate passed or a reviewer accepted them: `accepted`);
  each shard is checked for it before it is staged;
- `plus/train-NNNNN-of-NNNNN.parquet` (`--tier plus`): the train rows in the plus tier, chosen from their
  stored gate scores with the thresholds the build recorded in build.json (stages/tiers.py);
- `plots/*.png`: the published rows' label distribution, tier sizes and clip durations (stages/card_plots.py);
- `README.md`: derived from the published rows only. Its YAML `configs` list one config per tier (`coarse`,
  `plus`), each with its `train` split; how to load them, the plots, splits, gate, label and example
  sections are written from the published shards (held-back splits appear only as row counts), with the
  metric results (`metrics` in `build.json`, when a build records them); the build card's intro, tiers,
  review counts, columns, line-up, stage costs, citation and licence are kept, and everything it holds
  about other rows (gate reasons, labels, status and error counts) is left out. Text that a user or a
  model made is escaped for Markdown/HTML, and the corpus is named by its folder only.

Only a complete export is staged: `data/` must carry its seal (stages/export.py) and every shard must be
the one sealed, its Parquet footer readable.

The `review`, `rejected` and `failed` splits, the manifest, `hf/`, `build.json` and `.state/` stay
local. `upload` then creates the dataset repo (private unless asked otherwise) and uploads that
folder with one `upload_folder` call (huggingface_hub may cut a large upload into several commits),
removing data files a previous push left that this one does not have. The token comes from the
`HF_TOKEN` environment variable only (never an argument, never the token `hf auth login` stored),
goes only into `HfApi`, and is never logged; the staged files are checked not to contain it before
anything is sent.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from schemas.config import TIERS
from schemas.errors import UserError
from stages.card_plots import PLOTS, durations_of, plots_markdown, write_plots
from stages.export import (
    LICENCE,
    config_header,
    example_row,
    example_table,
    incomplete_export,
    load_section,
    markdown_text,
    top_labels_text,
)
from stages.tiers import misses, recorded_tiers, tier_counts

TOKEN_ENV = "HF_TOKEN"
ENDPOINT_ENV = "HF_ENDPOINT"
PUBLISHED_SPLIT = "train"  # the accepted rows; held-back, rejected and errored rows are never published
LOCAL_SPLITS = ("review", "rejected", "failed")
STAGING = ".push"
PLUS_DIR = "plus"  # the plus tier's shards, its own config on the Hub
TIER_FILES = {"coarse": f"data/{PUBLISHED_SPLIT}-*.parquet", "plus": f"{PLUS_DIR}/{PUBLISHED_SPLIT}-*.parquet"}
# The build card's sections a published card keeps: they describe the build and the published rows' tiers
# (counts, thresholds), not the rows held back.
KEPT_SECTIONS = ("Tiers", "Review", "Columns", "Model line-up", "What each stage cost", "Citation", "Licence")

log = logging.getLogger(__name__)


class PushError(UserError):
    """The dataset cannot be pushed as asked; the message says why (it never carries the token)."""


def hub_token() -> str:
    """The Hub token, from the environment only."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise PushError(
            f"{TOKEN_ENV} is not set: export a Hugging Face token with write access to the target namespace "
            f"(the token is read from the {TOKEN_ENV} environment variable only, never from the command line)"
        )
    return token


@dataclass
class Staged:
    folder: Path
    files: list[str]  # paths in the repo, as uploaded
    rows: int  # gated rows published
    held_back: dict[str, int] = field(default_factory=dict)  # split -> rows that stay local
    tiers: dict[str, int] = field(default_factory=dict)  # tier published (its own config) -> rows


def shards(data_dir: Path, split: str) -> list[Path]:
    return sorted(data_dir.glob(f"{split}-*-of-*.parquet"))


def _rows(paths: list[Path]) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def _check_gated(paths: list[Path]) -> None:
    for path in paths:
        for column in ("complete", "accepted"):
            values = pq.read_table(path, columns=[column]).column(column)
            if len(values) and (values.null_count or not pc.all(values).as_py()):
                raise PushError(
                    f"{path.name} holds rows that did not pass the gates ({column} is false): refusing to publish it"
                )


def _top_labels(paths: list[Path]) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter()
    for path in paths:
        for labels in pq.read_table(path, columns=["labels"]).column("labels").to_pylist():
            counts.update(labels or [])
    return counts.most_common(20)


def _split_card(card: str) -> tuple[dict, str]:
    match = re.match(r"---\n(.*?)\n---\n", card, flags=re.S)
    meta = yaml.safe_load(match.group(1)) if match else {}
    return (meta if isinstance(meta, dict) else {}), (card[match.end() :] if match else card)


def published_card(
    card: str,
    rows: int,
    held_back: dict[str, int],
    build: dict,
    top_labels: list[tuple[str, int]] | None = None,
    *,
    tiers: dict[str, int] | None = None,
    repo_id: str = "ORG/NAME",
    plots: list[str] | None = None,
    example: dict | None = None,
) -> str:
    """The card as published, derived from the published rows: one config per published tier (`tiers`:
    tier -> rows; default: the coarse tier's `rows`), each with its `train` split; how to load them from
    `repo_id`; the plots, splits, gate, metrics, labels and example written here from the published rows;
    of the build's card, the intro and KEPT_SECTIONS only."""
    tiers = tiers or {"coarse": rows}
    meta, body = _split_card(card)
    header = config_header({tier: [(PUBLISHED_SPLIT, TIER_FILES[tier])] for tier in tiers}, default=next(iter(tiers)))
    new_meta, _ = _split_card(header + "\n")
    meta = {k: v for k, v in meta.items() if k != "configs"}
    meta = {"configs": new_meta["configs"], **{k: v for k, v in new_meta.items() if k != "configs"}, **meta}

    total = rows + sum(held_back.values())
    rate = f"{100.0 * rows / total:.1f}%" if total else "n/a"
    held = ", ".join(f"`{split}` ({n} rows)" for split, n in held_back.items()) or "none"
    metrics = build.get("metrics") or {}
    metric_lines = "\n".join(f"| {markdown_text(name)} | {markdown_text(value)} |" for name, value in metrics.items())
    metric_text = (
        f"| metric | value |\n|---|---|\n{metric_lines}"
        if metrics
        else "No metric results were recorded for this build."
    )
    configs = "\n".join(f"| {tier} | {PUBLISHED_SPLIT} | {n} |" for tier, n in tiers.items())
    loading = load_section(repo_id, {tier: [PUBLISHED_SPLIT] for tier in tiers}, local=False)
    pictures = plots_markdown(plots or [])
    plus_note = " (in the `plus` config, those of them whose gate scores reach the plus thresholds: see Tiers)"
    plus_note = plus_note if "plus" in tiers else ""
    splits = f"""{loading}
## At a glance

{pictures or "(no plots were drawn)"}

## Splits

| config | split | rows |
|---|---|---|
{configs}

Only rows in the corpus are published: `{PUBLISHED_SPLIT}` holds clips every stage answered for that
passed every quality gate or that a human reviewer accepted{plus_note}. Rows held back for review, rejected
and errored rows stay with the builder and are not in this repository: {held}.

## Gate

{rows} of {total} rows passed ({rate}).

## Metric results

{metric_text}

## Labels

Most frequent labels in `{PUBLISHED_SPLIT}`: {top_labels_text(top_labels or [])}

## Example

{example_table(example)}

"""
    # The build card: its intro (up to the first section), then its sections by heading.
    first = re.search(r"^## ", body, flags=re.M)
    intro, rest = (body[: first.start()], body[first.start() :]) if first else (body, "")
    sections = re.split(r"^(?=## )", rest, flags=re.M)
    kept = [sec for sec in sections if sec.strip() and sec[3:].split("\n", 1)[0].strip() in KEPT_SECTIONS]
    # A build card of a version before this one ended with the summary block, which counts every split's rows.
    kept = [re.sub(r"^```json\n.*?^```\n?", "", sec, flags=re.S | re.M) for sec in kept]
    body = intro.rstrip("\n") + "\n\n" + splits + "".join(kept)
    if "## Licence" not in body:
        body = body.rstrip("\n") + "\n\n" + LICENCE
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n{body}"


def _staging_folder_is_ours(folder: Path) -> bool:
    """A staging folder push may empty: absent, empty, or holding only what `stage` writes."""
    if not folder.exists():
        return True
    if not folder.is_dir() or folder.is_symlink():
        return False
    for path in folder.rglob("*"):
        name = path.relative_to(folder).as_posix()
        if name not in ("README.md", "data", PLUS_DIR, PLOTS) and not re.fullmatch(
            rf"(data|{PLUS_DIR})/[^/]+\.parquet|{PLOTS}/[^/]+\.png", name
        ):
            return False
    return True


def _plus_shards(train: list[Path], target: Path, tiers_cfg) -> list[Path]:
    """The plus rows of the train shards, chosen from their stored gate scores with the build's thresholds,
    written as shards of their own (one per train shard that has any, schema and row order kept)."""
    chosen = []
    for shard in train:
        table = pq.read_table(shard)
        keep = [
            not misses(bool(accepted), gates or [], "plus", tiers_cfg)
            for accepted, gates in zip(table.column("accepted").to_pylist(), table.column("gates").to_pylist())
        ]
        if any(keep):
            chosen.append(table.filter(pa.array(keep)))
    paths = []
    for i, table in enumerate(chosen):
        path = target / f"{PUBLISHED_SPLIT}-{i:05d}-of-{len(chosen):05d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def stage(
    out_dir: Path | str,
    staging_dir: Path | str | None = None,
    *,
    tiers: tuple[str, ...] | list[str] = ("coarse",),
    repo_id: str = "ORG/NAME",
) -> Staged:
    """Put exactly what will be uploaded into `staging_dir` (default `OUT/.push`), replacing what was there:
    each tier of `tiers` as its own config (coarse: the train shards in data/; plus: its rows, chosen with the
    thresholds build.json records, in plus/), the card's plots and the card. Refuses an export that is not
    complete, a tier with no rows, and a staging folder holding anything `stage` did not write."""
    tiers = tuple(dict.fromkeys(tiers))
    unknown = [t for t in tiers if t not in TIERS]
    if unknown or not tiers:
        raise PushError(f"no tier named {', '.join(unknown) or '(none)'}: choose --tier from {', '.join(TIERS)}")
    out = Path(out_dir).resolve()
    card_path = out / "README.md"
    if not card_path.is_file() or not (out / "data").is_dir():
        raise PushError(f"{out} has no README.md and data/: is it a finished build-coarse output?")
    # The export as it is now: a build swapping in a new one while this runs does not mix the two.
    data_dir = (out / "data").resolve()
    if problem := incomplete_export(data_dir):
        raise PushError(f"{out} holds no complete export ({problem}): run build-coarse again, then push")
    train = shards(data_dir, PUBLISHED_SPLIT)
    if not train:
        raise PushError(f"{out / 'data'} has no {PUBLISHED_SPLIT}-*.parquet shards: nothing to publish")
    rows = _rows(train)
    if rows == 0:
        raise PushError(f"the {PUBLISHED_SPLIT} split of {out} is empty: no row passed the gate, nothing to publish")
    _check_gated(train)
    held_back = {split: _rows(shards(data_dir, split)) for split in LOCAL_SPLITS if shards(data_dir, split)}
    build_json = out / "build.json"
    build = json.loads(build_json.read_text(encoding="utf-8")) if build_json.is_file() else {}
    tiers_cfg = recorded_tiers(build)
    if "plus" in tiers and tiers_cfg is None:
        raise PushError(
            f"{build_json} records no tier thresholds (a build of an older version): run build-coarse again, "
            "then push --tier plus"
        )

    folder = Path(staging_dir).resolve() if staging_dir else out / STAGING
    if out.is_relative_to(folder) or any(p.is_relative_to(folder) for p in [card_path, data_dir, *train]):
        raise PushError(f"staging folder {folder} holds the build itself: choose an empty or dedicated folder")
    if not _staging_folder_is_ours(folder):
        raise PushError(
            f"staging folder {folder} holds files push did not stage: it is not emptied; "
            "choose an empty or dedicated folder"
        )
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "data").mkdir(parents=True)
    files, published, counts = [], [], {}
    try:
        if "coarse" in tiers:
            for shard in train:
                target = folder / "data" / shard.name
                try:
                    os.link(shard, target)  # same file system: no copy of a large split
                except OSError:
                    shutil.copy2(shard, target)
                files.append(f"data/{shard.name}")
                published.append(target)
            counts["coarse"] = rows
        if "plus" in tiers:
            (folder / PLUS_DIR).mkdir()
            plus = _plus_shards(train, folder / PLUS_DIR, tiers_cfg)
            if not plus:
                shutil.rmtree(folder)
                raise PushError(
                    f"the plus tier of {out} has no rows (the thresholds in build.json leave out every train row): "
                    "nothing to publish as plus; lower [tiers.plus] and rebuild, or push --tier coarse"
                )
            files += [f"{PLUS_DIR}/{p.name}" for p in plus]
            published = published or plus
            counts["plus"] = _rows(plus)
    except FileNotFoundError:
        raise PushError(f"a new build of {out} replaced its export while it was staged: push again") from None
    if not any((folder / "data").iterdir()):
        (folder / "data").rmdir()
    all_tiers = tier_counts(build.get("tiers") or {"coarse": {"rows": rows}})
    plots = write_plots(
        folder,
        top_labels=_top_labels(published),
        tiers={t: counts.get(t, all_tiers[t]) for t in TIERS if t in counts or t in (build.get("tiers") or {})},
        held_back=held_back,
        durations=durations_of(published),
        scope=f"published {next(iter(counts))} rows",
    )
    files += plots
    published_rows = counts[next(iter(counts))]
    card = published_card(
        card_path.read_text(encoding="utf-8"),
        published_rows,
        held_back | ({"train (not plus)": rows - counts["plus"]} if "coarse" not in counts else {}),
        build,
        _top_labels(published),
        tiers=counts,
        repo_id=repo_id,
        plots=plots,
        example=example_row({PUBLISHED_SPLIT: published}, (PUBLISHED_SPLIT,)),
    )
    (folder / "README.md").write_text(card, encoding="utf-8")
    files.append("README.md")
    log.info(
        "staged %s in %d file(s) and the card in %s; held back: %s",
        ", ".join(f"{tier} ({n} rows)" for tier, n in counts.items()),
        len(files),
        folder,
        held_back,
    )
    return Staged(folder=folder, files=sorted(files), rows=published_rows, held_back=held_back, tiers=counts)


def _assert_absent(folder: Path, secret: str) -> None:
    """No staged file may carry the token (a card or a shard that picked it up somewhere)."""
    needle, chunk = secret.encode(), 1 << 20
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            tail = b""
            while block := f.read(chunk):
                if needle in tail + block:
                    raise PushError(
                        f"{path.relative_to(folder)} contains the {TOKEN_ENV} token: refusing to upload it"
                    )
                seen = tail + block
                tail = seen[max(0, len(seen) - len(needle) + 1) :]


def upload(staged: Staged, repo_id: str, *, private: bool = True, endpoint: str | None = None) -> dict:
    """Create the dataset repo (private by default) and upload the staged folder in one commit."""
    from huggingface_hub import HfApi

    token = hub_token()
    _assert_absent(staged.folder, token)
    if not private:
        log.warning(
            "pushing %s as a public dataset: data derived from MER clips is under the MER EULA (academic use only, "
            "no redistribution); make sure publishing it is allowed",
            repo_id,
        )
    # `endpoint=None` lets huggingface_hub use HF_ENDPOINT (or the public Hub).
    api = HfApi(endpoint=endpoint or os.environ.get(ENDPOINT_ENV) or None, token=token, library_name="emer-engine")
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.dataset_info(repo_id)
    if private and info.private is not True:
        raise PushError(
            f"dataset repo {repo_id} already exists and is public: refusing to upload MER-derived data to it "
            "(make it private on the Hub first, or push with --public if publishing is intended)"
        )
    if not private and info.private:
        log.warning(
            "dataset repo %s already exists and is private; it stays private (change its visibility on the Hub)",
            repo_id,
        )
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=str(staged.folder),
        commit_message=f"Gated corpus: {staged.rows} rows"
        + (f" ({', '.join(f'{t}: {n}' for t, n in staged.tiers.items())})" if staged.tiers else ""),
        commit_description=(
            "Uploaded by emer-coarse push: the train split (rows that passed the gate) of each published tier, "
            "the dataset card and its plots."
        ),
        # Shards and plots of an earlier push that this one replaces: the repo holds the tiers pushed last.
        delete_patterns=["data/*", f"{PLUS_DIR}/*", f"{PLOTS}/*"],
    )
    result = {
        "repo_id": repo_id,
        "private": bool(info.private),
        "url": f"{api.endpoint}/datasets/{repo_id}",
        "commit": commit.oid,
        "commit_url": commit.commit_url,
        "files": staged.files,
        "rows": staged.rows,
        "tiers": staged.tiers,
        "held_back": staged.held_back,
        "staged": str(staged.folder),
    }
    log.info(
        "pushed %d gated rows to %s (%s), commit %s",
        staged.rows,
        repo_id,
        "private" if result["private"] else "public",
        commit.oid,
    )
    return result


def push(
    out_dir: Path | str,
    repo_id: str,
    *,
    private: bool = True,
    endpoint: str | None = None,
    staging_dir: Path | str | None = None,
    tiers: tuple[str, ...] | list[str] = ("coarse",),
) -> dict:
    """Stage the gated split of each tier in `tiers` and the card of `out_dir`, then upload them to the
    dataset repo `repo_id` (each tier its own config)."""
    hub_token()  # fail before staging anything when there is no token
    staged = stage(out_dir, staging_dir, tiers=tiers, repo_id=repo_id)
    return upload(staged, repo_id, private=private, endpoint=endpoint)
