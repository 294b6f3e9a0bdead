"""Where the flow process's CPU goes: py-spy samples (those holding the GIL: the Python CPU) of a
dispatch run, per component.

py-spy samples the running process from outside (every thread, native code too), so the run is
profiled as it is, with nothing added to the engine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

# py-spy names files by module path ("openai/_base_client.py"). A sample is charged to the innermost
# frame that belongs to a component (so typing.py under pydantic counts as pydantic).
COMPONENTS = [
    ("openai SDK", r"\(openai/(?!_vendor)"),
    (
        "HTTP (aiohttp, httpx)",
        r"\((aiohttp|aiohappyeyeballs|httpx|httpcore|openai/_vendor|anyio|yarl|multidict|ssl\.py)",
    ),
    ("JSON encode/decode", r"\(json/"),
    ("pydantic", r"\(pydantic(_core)?/"),
    ("SQLite checkpoint", r"\(runtime/checkpoint\.py"),
    (
        "engine (flows/, engine/, stages/, backends/, runtime/, annotators/, gates/, schemas/)",
        r"\((flows|engine|stages|backends|runtime|annotators|gates|schemas|metrics|review)/",
    ),
    ("Arrow, datasets (export)", r"\((pyarrow|datasets|fsspec|pandas|huggingface_hub)/"),
    ("Prefect", r"\(prefect/"),
    ("asyncio event loop", r"\(asyncio/"),
    ("threads, queues, locks", r"\((threading|queue|concurrent/futures)"),
]


def record(cmd: list[str], out: Path, env: dict, cwd: Path, rate: int = 100) -> subprocess.CompletedProcess:
    spy = str(Path(sys.executable).with_name("py-spy"))
    return subprocess.run(
        [spy, "record", "--gil", "-o", str(out), "-f", "raw", "-r", str(rate), "--", *cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def components(raw: Path) -> dict[str, float]:
    """Share of samples per component, by self frame; samples inside imports are charged to imports."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if any("importlib" in f for f in frames):
            counts["imports"] += int(n)
            continue
        owner = next(
            (name for frame in reversed(frames) for name, pattern in COMPONENTS if re.search(pattern, frame)), "other"
        )
        counts[owner] += int(n)
    total = sum(counts.values()) or 1
    return {name: n / total for name, n in counts.most_common()}


def top_functions(raw: Path, under: str = r"RoleClient\.ask", limit: int = 12) -> list[tuple[str, float]]:
    """Inclusive share of the hottest functions below `under` (default: the client layer)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        start = next((i for i, f in enumerate(frames) if re.search(under, f)), None)
        if start is None:
            continue
        total += int(n)
        for name in {re.sub(r" \(.*/", " (", f) for f in frames[start + 1 :]}:
            inclusive[name] += int(n)
    return [(name, n / total) for name, n in inclusive.most_common(limit)] if total else []
