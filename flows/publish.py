"""Publish a built dataset to the Hugging Face Hub: the gated rows and a dataset card, nothing else.

`stage` copies exactly what will be uploaded into a folder of its own (by default `OUT/.push/`):

- `data/train-NNNNN-of-NNNNN.parquet`: the `train` split, the rows in the corpus (complete, and every
  quality gate passed or a reviewer accepted them: `accepted`); each shard is checked for it before it is staged;
- `README.md`: the build's card with its YAML `configs` reduced to the `train` split, the splits
  section rewritten to say what was published and what was held back, the gate's pass rate and the
  metric results (`metrics` in `build.json`, when a build records them); the line-up, prompt
  versions and licence text are kept as the build wrote them.

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
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from stages.export import LICENCE

TOKEN_ENV = "HF_TOKEN"
ENDPOINT_ENV = "HF_ENDPOINT"
PUBLISHED_SPLIT = "train"  # the accepted rows; held-back, rejected and errored rows are never published
LOCAL_SPLITS = ("review", "rejected", "failed")
STAGING = ".push"

log = logging.getLogger(__name__)


class PushError(RuntimeError):
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


def shards(out_dir: Path, split: str) -> list[Path]:
    return sorted((out_dir / "data").glob(f"{split}-*-of-*.parquet"))


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


def published_card(card: str, rows: int, held_back: dict[str, int], build: dict) -> str:
    """The build's card as published: only the gated split in `configs`, and what was held back."""
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
    metric_lines = "\n".join(f"| {name} | {value} |" for name, value in metrics.items())
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

{rows} of {total} rows passed ({rate}); the build's counts by clip status and by failing stage are below.

## Metric results

{metric_text}

"""
    section = re.search(r"^## Splits\n.*?(?=^## )", body, flags=re.S | re.M)
    if section:
        body = body[: section.start()] + splits + body[section.end() :]
    else:
        heading = re.search(r"^# .*\n", body, flags=re.M)
        at = heading.end() if heading else 0
        body = body[:at] + "\n" + splits + body[at:]
    if "## Licence" not in body:
        body = body.rstrip("\n") + "\n\n" + LICENCE
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n{body}"


def stage(out_dir: Path | str, staging_dir: Path | str | None = None) -> Staged:
    """Put exactly what will be uploaded into `staging_dir` (default `OUT/.push`), replacing what was there."""
    out = Path(out_dir).resolve()
    card_path = out / "README.md"
    if not card_path.is_file():
        raise PushError(f"{out} has no README.md: is it a finished build-coarse output?")
    train = shards(out, PUBLISHED_SPLIT)
    if not train:
        raise PushError(f"{out / 'data'} has no {PUBLISHED_SPLIT}-*.parquet shards: nothing to publish")
    rows = _rows(train)
    if rows == 0:
        raise PushError(f"the {PUBLISHED_SPLIT} split of {out} is empty: no row passed the gate, nothing to publish")
    _check_gated(train)
    held_back = {split: _rows(shards(out, split)) for split in LOCAL_SPLITS if shards(out, split)}
    build_json = out / "build.json"
    build = json.loads(build_json.read_text(encoding="utf-8")) if build_json.is_file() else {}

    folder = Path(staging_dir).resolve() if staging_dir else out / STAGING
    if out.is_relative_to(folder) or any(p.is_relative_to(folder) for p in [card_path, *train]):
        raise PushError(f"staging folder {folder} holds the build itself: choose an empty or dedicated folder")
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "data").mkdir(parents=True)
    files = []
    for shard in train:
        target = folder / "data" / shard.name
        try:
            os.link(shard, target)  # same file system: no copy of a large split
        except OSError:
            shutil.copy2(shard, target)
        files.append(f"data/{shard.name}")
    card = published_card(card_path.read_text(encoding="utf-8"), rows, held_back, build)
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
