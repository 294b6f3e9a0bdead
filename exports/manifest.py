"""The small manifest every export writes beside its files (`export-manifest.json`): what was written, from
which build, for which reader, and each row whose media could not be placed. A later export into the same
folder reads it to replace exactly those files and nothing else."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

MANIFEST = "export-manifest.json"


class MediaProblem(BaseModel):
    name: str = Field(description="The clip's name")
    medium: str = Field(description="video or audio")
    problem: str = Field(description="Why the medium is not where the reader looks for it")


class SkippedRow(BaseModel):
    name: str
    reason: str


class SourceBuild(BaseModel):
    out_dir: str = Field(description="The build-coarse output the rows come from")
    export_id: str = Field(description="Its sealed export (OUT/.exports/<id>) the rows were read from")
    split: str = Field("train", description="The split exported: the rows fit to publish")
    splits: dict[str, int] = Field(default_factory=dict, description="The build's rows per split (build.json)")
    tier_counts: dict[str, int] = Field(default_factory=dict, description="The build's rows per tier (build.json)")


class ExportManifest(BaseModel):
    format: str = Field(description="affectgpt | mercaption | llamafactory | atomic")
    tier: str = Field(description="coarse (the train split) or plus (its stricter subset)")
    rows: int = Field(description="Clips exported")
    samples: int = Field(description="Training samples written (atomic writes several per clip)")
    source: SourceBuild
    config_fingerprint: str | None = Field(None, description="The build's line-up fingerprint")
    media: str = Field(description="link | copy | none")
    converted_to: str | None = Field(None, description="Container the clips were re-muxed into (--avi)")
    files: list[str] = Field(default_factory=list, description="Files written, relative to the export folder")
    media_files: int = Field(0, description="Media files linked, copied or converted")
    reader: dict[str, str] = Field(default_factory=dict, description="Where the consumer's loader looks, in its words")
    notes: list[str] = Field(default_factory=list, description="What a user of this export must know")
    skipped: list[SkippedRow] = Field(default_factory=list, description="Rows left out, with why")
    media_problems: list[MediaProblem] = Field(default_factory=list)
    created_at: str


def write_manifest(folder: Path, manifest: ExportManifest) -> Path:
    path = folder / MANIFEST
    partial = folder / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest.model_dump(mode="json"), indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, path)
    return path


def read_manifest(folder: Path) -> ExportManifest | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return ExportManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


@dataclass
class Written:
    """What one format writer wrote: the manifest's format-specific part."""

    files: list[str] = field(default_factory=list)
    rows: int = 0
    samples: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    reader: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
