"""Benchmark corpora: N clips in the MER layout (video/ + subtitle_chieng.csv), and a warm state.

Clips are hard links to one generated talking clip, each with its own subtitle: every model request
of the run is distinct (the subtitle is in every prompt), while decoding happens once. Media prep
and probing are measured on their own (bench/media.py); here they would only drown the dispatch.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
from pathlib import Path

from data import synth_clips
from flows.build_coarse import probe_cache_key
from runtime.checkpoint import Checkpoint
from schemas.config import EngineConfig
from schemas.manifest import Subtitles
from stages.ingest import probe_clip

# MER subtitles run 10 to 30 words; the number makes each clip's prompts its own.
SUBTITLES = [
    "I told you a hundred times not to touch my things, and you did it again anyway.",
    "Oh really? I did not expect that at all, this is the best news I have heard all year.",
    "Please, just leave me alone for a while, I need some time to think about all of this.",
    "We finally made it, after all those years of trying, we actually made it together.",
]


def base_clip(workdir: Path) -> Path:
    path = workdir / "base.mp4"
    if not path.is_file():
        synth_clips.talking_clip(path, "Oh really? I did not expect that at all.", size="320x180")
    return path


def make_corpus(root: Path, n: int, base: Path, prefix: str = "bench") -> Path:
    """`n` clips named {prefix}_{i:06d}.mp4 (hard links to `base`) and their subtitle table."""
    if root.exists():
        shutil.rmtree(root)
    (root / "video").mkdir(parents=True)
    rows = []
    for i in range(n):
        name = f"{prefix}_{i:06d}"
        os.link(base, root / "video" / f"{name}.mp4")
        rows.append((name, "", f"{SUBTITLES[i % len(SUBTITLES)]} (take {i})"))
    with (root / "subtitle_chieng.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "chinese", "english"])
        writer.writerows(rows)
    return root


def seed_probes(root: Path, state_dir: Path, config: EngineConfig, base: Path) -> None:
    """Store in the run's checkpoint what probing each clip finds: the base clip's record under each
    link's name and path (exactly what a probe of an identical file returns), so ingest is a cache hit."""
    probed = probe_clip(base, Subtitles(), None, config.media.audio_max_seconds, config.media.silence_threshold_db)
    checkpoint = Checkpoint(state_dir / "checkpoint.sqlite")
    try:
        for path in sorted((root / "video").iterdir()):
            key = probe_cache_key(path, None, config.media)
            record = probed.model_copy(update={"name": path.stem, "path": str(path.resolve())})
            checkpoint.put("probe", key, key, record.model_dump(mode="json"), ok=True)
    finally:
        checkpoint.close()


def fresh_state(warm: Path, state_dir: Path) -> Path:
    """A state dir with the warm one's media cache and measurements, and none of its model answers."""
    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    (state_dir / "media").symlink_to((warm / "media").resolve(), target_is_directory=True)
    Checkpoint(state_dir / "checkpoint.sqlite").close()  # the engine's schema
    # Plain SQL across the two files: a benchmark set-up step the engine itself never needs.
    with sqlite3.connect(state_dir / "checkpoint.sqlite") as db:
        db.execute("ATTACH DATABASE ? AS warm", (str(warm / "checkpoint.sqlite"),))
        db.execute(
            "INSERT OR REPLACE INTO results SELECT * FROM warm.results WHERE stage IN ('signals', 'media_prep')"
        )
    db.close()
    return state_dir
