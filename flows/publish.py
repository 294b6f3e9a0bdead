"""Publish a built dataset to the Hugging Face Hub: the gated rows and a dataset card, nothing else.

`stage` copies exactly what will be uploaded into a folder of its own (by default `OUT/.push/`):

- `data/train-NNNNN-of-NNNNN.parquet`: the `train` split, the rows in the corpus (complete, and every
  quality gate passed or a reviewer accepted them: `accepted`); each shard is checked for it before it is staged;
- `README.md`: derived from the published rows only. Its YAML `configs` list the `train` split; the
  splits, gate and label sections are written from the `train` shards (held-back splits appear only as
  row counts), with the metric results (`metrics` in `build.json`, when a build records them); the
  build card's intro, line-up, stage costs and licence are kept, and everything it holds about other
  rows (gate reasons, labels, status and error counts, the summary block) is left out. Text that a
  user or a model made is escaped for Markdown/HTML, and the corpus is named by its folder only.

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

import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from schemas.errors import UserError
from stages.export import LICENCE, incomplete_export, markdown_text, top_labels_text

TOKEN_ENV = "HF_TOKEN"
ENDPOINT_ENV = "HF_ENDPOINT"
PUBLISHED_SPLIT = "train"  # the accepted rows; held-back, rejected and errored rows are never published
LOCAL_SPLITS = ("review", "rejected", "failed")
STAGING = ".push"
# The build card's sections a published card keeps: they describe the build, not the rows held back.
KEPT_SECTIONS = ("Model line-up", "What each stage cost", "Licence")

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


def published_card(
    card: str, rows: int, held_back: dict[str, int], build: dict, top_labels: list[tuple[str, int]] | None = None
) -> str:
    """The card as published, derived from the published rows: only the gated split in `configs`; the
    splits, gate, metrics and labels written here; of the build's card, the intro and KEPT_SECTIONS only."""
    match = re.match(r"---\n(.*?)\n---\n", card, flags=re.S)
    meta = yaml.safe_load(match.group(1)) if match else {}
    body = card[match.end() :] if match else card
    meta = meta if isinstance(meta, dict) else {}
    meta["configs"] = [
        {
            "config_name": "default",
            "data_files": [{"split": PUBLISHED_SPLIT, "path": f"data/{PUBLISHED_SPLIT}-*.parquet"}],
        }
    ]
    meta.setdefault("license", "other")
    meta.setdefault("license_name", "mer-eula")

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
    splits = f"""## Splits

| split | rows |
|---|---|
| {PUBLISHED_SPLIT} | {rows} |

Only rows in the corpus are published: `{PUBLISHED_SPLIT}` holds clips every stage answered for that
passed every quality gate or that a human reviewer accepted. Rows held back for review, rejected and
errored rows stay with the builder and are not in this repository: {held}.

## Gate

{rows} of {total} rows passed ({rate}).

## Metric results

{metric_text}

## Labels

Most frequent labels in `{PUBLISHED_SPLIT}`: {top_labels_text(top_labels or [])}

"""
    # The build card: its intro (up to the first section), then its sections by heading.
    first = re.search(r"^## ", body, flags=re.M)
    intro, rest = (body[: first.start()], body[first.start() :]) if first else (body, "")
    sections = re.split(r"^(?=## )", rest, flags=re.M)
    kept = [sec for sec in sections if sec.strip() and sec[3:].split("\n", 1)[0].strip() in KEPT_SECTIONS]
    # The summary block counts every split's rows: it stays local.
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
        if name not in ("README.md", "data") and not re.fullmatch(r"data/[^/]+\.parquet", name):
            return False
    return True


def stage(out_dir: Path | str, staging_dir: Path | str | None = None) -> Staged:
    """Put exactly what will be uploaded into `staging_dir` (default `OUT/.push`), replacing what was there.
    Refuses an export that is not complete, and a staging folder holding anything `stage` did not write."""
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
    files = []
    try:
        for shard in train:
            target = folder / "data" / shard.name
            try:
                os.link(shard, target)  # same file system: no copy of a large split
            except OSError:
                shutil.copy2(shard, target)
            files.append(f"data/{shard.name}")
    except FileNotFoundError:
        raise PushError(f"a new build of {out} replaced its export while it was staged: push again") from None
    card = published_card(card_path.read_text(encoding="utf-8"), rows, held_back, build, _top_labels(train))
    (folder / "README.md").write_text(card, encoding="utf-8")
    files.append("README.md")
    log.info(
        "staged %d gated rows in %d shard(s) and the card in %s; held back: %s", rows, len(train), folder, held_back
    )
    return Staged(folder=folder, files=sorted(files), rows=rows, held_back=held_back)


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
        commit_message=f"Gated corpus: {staged.rows} rows",
        commit_description=(
            "Uploaded by emer-coarse push: the train split (rows that passed the gate) and the dataset card."
        ),
        delete_patterns=["data/*"],  # shards of an earlier push that this one replaces
    )
    result = {
        "repo_id": repo_id,
        "private": bool(info.private),
        "url": f"{api.endpoint}/datasets/{repo_id}",
        "commit": commit.oid,
        "commit_url": commit.commit_url,
        "files": staged.files,
        "rows": staged.rows,
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
) -> dict:
    """Stage the gated split and card of `out_dir`, then upload them to the dataset repo `repo_id`."""
    hub_token()  # fail before staging anything when there is no token
    return upload(stage(out_dir, staging_dir), repo_id, private=private, endpoint=endpoint)
