"""Fault-injection helpers for the tests in tests/faults: a filesystem that fills up (a real tmpfs of a
chosen size, mounted by the test), and the processes a run leaves behind (read from /proc, the
kernel's own account, not from anything the engine reports)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class BoundedFilesystem:
    """A tmpfs of `size` mounted at `path`: writes past its size fail with ENOSPC, as on a full disk."""

    path: Path
    size: str

    def resize(self, size: str) -> None:
        """Free space (or take it away) without touching what is stored: tmpfs resizes in place."""
        _mount(["-o", f"remount,size={size}", str(self.path)])
        self.size = size


def _mount(args: list[str]) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@contextmanager
def bounded_filesystem(path: Path, size: str) -> Iterator[BoundedFilesystem]:
    """Mount a `size` tmpfs at `path` for the duration (CI runs as root); skip, saying why, where
    mounting is not permitted (an unprivileged container)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        pytest.skip(f"cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): {str(detail).strip()}")
    try:
        yield BoundedFilesystem(path, size)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


# --- processes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """A process as /proc names it: pid plus start time (a pid alone may be reused), and its command."""

    pid: int
    start: int
    command: str

    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[2] == self.start and stat[1] != "Z"


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time in clock ticks) of `pid`, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces or parentheses itself: split after the last.
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def descendants(root: int) -> set[Proc]:
    """Every living process below `root` (children, theirs, and so on), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None and stat[1] != "Z":
            children.setdefault(stat[0], []).append(int(entry.name))
    found, todo = set(), list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if (stat := _stat(pid)) is not None:
            found.add(Proc(pid, stat[2], _command(pid)))
            todo += children.get(pid, [])
    return found


def survivors(procs: set[Proc], within: float = 10.0) -> set[Proc]:
    """Those of `procs` still alive after waiting up to `within` seconds for them to go."""
    deadline = time.monotonic() + within
    alive = {p for p in procs if p.alive()}
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {p for p in alive if p.alive()}
    return alive


def kill_tree(procs: set[Proc]) -> None:
    """SIGKILL whatever of `procs` is left (a test's own clean-up, so a failure leaks nothing)."""
    for proc in procs:
        if proc.alive():
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
