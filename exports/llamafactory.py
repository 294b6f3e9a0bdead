"""LLaMA-Factory's multimodal SFT data: a ShareGPT-format file whose samples carry `messages`, `videos` and
`audios`, with one `<video>` / `<audio>` placeholder in the user turn per medium, and the `dataset_info.json`
entry that declares it (formatting `sharegpt`, the columns, the role tags).

Matched against hiyouga/LLaMA-Factory as released in llamafactory 0.9.5 (PyPI): `data/parser.py`
(`get_dataset_list` reads `dataset_info.json` in `dataset_dir`; `DatasetAttr.join` takes `file_name`,
`formatting`, `columns` and `tags`), `data/loader.py` (a `file_name` ending in .jsonl is loaded with datasets'
json builder), `data/converter.py` (`SharegptDatasetConverter`: turns alternate user/assistant by the tags;
`_find_medias` joins each relative media path to `media_dir`, which defaults to `dataset_dir`, and keeps
an absolute one) and `data/mm_plugin.py` (`_validate_messages`: as many placeholders as media). Media paths
are relative to the export folder, so `dataset_dir` = the folder is all a training config needs; with
`--media none` they are the corpus's own absolute paths.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from exports.manifest import SkippedRow, Written
from exports.media import Placer
from exports.source import Clip
from exports.tasks import Task, fill, load_tasks, row_fields

DATASET_INFO = "dataset_info.json"
PLACEHOLDERS = {"video": "<video>", "audio": "<audio>"}
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def dataset_name(prefix: str, tier: str) -> str:
    return prefix if tier == "coarse" else f"{prefix}_{tier}"


def dataset_info_entry(file_name: str) -> dict:
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "videos": "videos", "audios": "audios"},
        "tags": dict(TAGS),
    }


def write_dataset_info(to: Path, entries: dict[str, dict]) -> str:
    """`dataset_info.json` declaring `entries`; other datasets an existing file declares are kept."""
    path = to / DATASET_INFO
    info = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    info.update(entries)
    partial = to / f".{DATASET_INFO}.partial"
    partial.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return DATASET_INFO


class MediaOfClip:
    """A clip's video and audio placed once, whichever samples of it use them."""

    def __init__(self, clip: Clip, placer: Placer) -> None:
        name = clip.row.name
        self.video = placer.place(name, "video", clip.video, f"video/{name}{clip.video.suffix.lower()}")
        self.audio = None
        if clip.audio is None:
            placer.missing(name, "audio", dict(clip.problems).get("audio", "no audio"))
        else:
            self.audio = placer.place(name, "audio", clip.audio, f"audio/{name}.wav")

    def sample(self, task: Task, fields: dict[str, str | None]) -> dict | None:
        """One ShareGPT sample of `task`; None when the row lacks what the task needs (a video task without
        the clip is not written; an audio one without audio is written without it when it has video too)."""
        media = [m for m in task.media if getattr(self, m)]
        if not task.fits(fields) or ("video" in task.media and "video" not in media) or (task.media and not media):
            return None
        prefix = "".join(PLACEHOLDERS[m] for m in media)
        return {
            "messages": [
                {"role": "user", "content": prefix + fill(task.question, fields)},
                {"role": "assistant", "content": fill(task.answer, fields)},
            ],
            "videos": [self.video] if "video" in media else [],
            "audios": [self.audio] if "audio" in media else [],
        }


def write_samples(clips: Iterable[Clip], to: Path, file_name: str, placer: Placer, samples_of) -> Written:
    """Stream each clip's samples (`samples_of(media, fields)`) into `file_name` (JSON Lines)."""
    written = Written()
    with (to / file_name).open("w", encoding="utf-8") as f:
        for clip in clips:
            if clip.video is None:
                written.skipped.append(SkippedRow(name=clip.row.name, reason=dict(clip.problems)["video"]))
                continue
            media = MediaOfClip(clip, placer)
            if media.video is None:
                written.skipped.append(SkippedRow(name=clip.row.name, reason="its clip could not be placed"))
                continue
            samples = [s for s in samples_of(media, row_fields(clip.row)) if s is not None]
            for sample in samples:
                f.write(json.dumps(sample, ensure_ascii=False) + "\n")
            written.rows += 1
            written.samples += len(samples)
    written.files.append(file_name)
    return written


def write(clips: Iterable[Clip], to: Path, placer: Placer, tier: str) -> Written:
    """One sample per clip: the EMER-Coarse reasoning task (tasks.toml [reasoning])."""
    tasks = load_tasks()
    name = dataset_name("emer_coarse", tier)

    def samples_of(media: MediaOfClip, fields: dict[str, str | None]) -> list[dict | None]:
        return [media.sample(tasks.reasoning, fields)]

    written = write_samples(clips, to, f"{name}.jsonl", placer, samples_of)
    written.files.append(write_dataset_info(to, {name: dataset_info_entry(f"{name}.jsonl")}))
    written.reader = reader(name, placer)
    written.notes.append(f"questions: exports/tasks.toml version {tasks.version}")
    return written


def reader(name: str, placer: Placer) -> dict[str, str]:
    return {
        "dataset": name,
        "dataset_dir": "DIR",
        "media_dir": "DIR (the default: dataset_dir)" if placer.mode != "none" else "unused: absolute paths",
        "template": "a video+audio model's, e.g. qwen2_omni",
    }
