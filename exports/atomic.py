"""SignificantOther-style instruction tasks: emotion understanding decomposed into atomic questions about what
the engine measured and said of each clip (the face and its action units, the voice, the words, the labels),
and one chain-of-thought sample that goes clues -> reasoning -> labels; written in LLaMA-Factory's ShareGPT
format (exports/llamafactory.py). The questions are versioned data: exports/tasks.toml.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from exports.llamafactory import dataset_info_entry, dataset_name, reader, write_dataset_info, write_samples
from exports.manifest import Written
from exports.media import Placer
from exports.source import Clip
from exports.tasks import load_tasks


def write(clips: Iterable[Clip], to: Path, placer: Placer, tier: str) -> Written:
    tasks = load_tasks()
    name = dataset_name("emer_atomic", tier)

    def samples_of(media, fields):
        return [media.sample(task, fields) for task in (*tasks.atomic, tasks.chain_of_thought)]

    written = write_samples(clips, to, f"{name}.jsonl", placer, samples_of)
    written.files.append(write_dataset_info(to, {name: dataset_info_entry(f"{name}.jsonl")}))
    written.reader = reader(name, placer)
    written.notes.append(
        f"tasks: exports/tasks.toml version {tasks.version} ({', '.join(t.id for t in tasks.atomic)}, "
        f"{tasks.chain_of_thought.id}); a task whose field a row lacks is not written for it"
    )
    return written
