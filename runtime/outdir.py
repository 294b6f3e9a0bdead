"""The build output folder: which of its entries the engine wrote, and who is building into it now.

`OUT/.emer-build.json` lists the top-level entries of OUT that the engine wrote (it is written before
each of them, so a build killed after creating one still knows it). The engine deletes or overwrites an
entry only when the marker lists it: files of anyone else in OUT are never touched, even when forced.
A non-empty OUT without a marker (a corpus, someone's project) is refused before any work unless forced.

`OUT/.emer-build.lock` is held with `flock` for the whole build: a second build on the same OUT is
refused at once, with the pid, host and start time the first one wrote into the lock file. The kernel
drops the lock when its holder dies, however it dies, so a killed build never leaves OUT locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from schemas.errors import UserError

MARKER = ".emer-build.json"
LOCK = ".emer-build.lock"
WRITTEN_BY = "emer-engine build-coarse"
# Every top-level entry a build may write in OUT (`.push` is push's staging folder).
ENGINE_ENTRIES = (
    MARKER,
    LOCK,
    ".state",
    ".parts",
    ".exports",
    ".export-fingerprint",
    "manifest.parquet",
    "data",
    "hf",
    "plots",
    "README.md",
    "build.json",
    ".push",
)
# Left by builds of versions before the marker: such an OUT is adopted, not refused.
_LEGACY_SIGNS = (".export-fingerprint", ".state/checkpoint.sqlite")


class ForeignOutputError(UserError):
    """OUT holds files the engine did not write: refused, so that nothing of anyone else is replaced."""


class OutputInUseError(UserError):
    """Another build holds OUT's lock."""


@dataclass
class OutputFolder:
    path: Path
    owned: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, path: Path, *, force: bool = False) -> OutputFolder:
        """OUT as the engine may use it. Refuses (ForeignOutputError, nothing written) a non-empty folder
        it has no marker for unless `force`, and even then one where an entry it writes is someone else's."""
        path = Path(path).resolve()
        if path.exists() and not path.is_dir():
            raise ForeignOutputError(f"--out {path} is a file, not a folder: choose a folder for the build output")
        folder = cls.existing(path)
        if folder.owned or not path.is_dir():
            return folder._claimed(MARKER)
        present = sorted(p.name for p in path.iterdir())
        if not present:
            return folder._claimed(MARKER)
        if any((path / sign).exists() for sign in _LEGACY_SIGNS):
            folder.owned = {name for name in ENGINE_ENTRIES if (path / name).exists() or (path / name).is_symlink()}
            return folder._claimed(MARKER)
        if not force:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise ForeignOutputError(
                f"--out {path} is not empty and was not written by emer-coarse ({shown}): "
                "choose an empty or new folder, or pass --force to build beside what is there"
            )
        clashes = sorted(name for name in ENGINE_ENTRIES if (path / name).exists() or (path / name).is_symlink())
        if clashes:
            raise ForeignOutputError(
                f"--out {path}: {', '.join(clashes)} {'is' if len(clashes) == 1 else 'are'} not emer-coarse's "
                "and would be replaced, even with --force: move them away or choose another folder"
            )
        return folder._claimed(MARKER)

    @classmethod
    def existing(cls, path: Path) -> OutputFolder:
        """OUT with the entries its marker lists (none when it has no marker)."""
        path = Path(path).resolve()
        try:
            marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return cls(path)
        return cls(path, set(marker.get("entries", [])) if isinstance(marker, dict) else set())

    def owns(self, name: str) -> bool:
        return name.split("/")[0] in self.owned

    def claim(self, *names: str) -> None:
        """Record `names` (top-level entries) as the engine's, before writing them."""
        tops = {name.split("/")[0] for name in names}
        if tops <= self.owned:
            return
        foreign = [t for t in sorted(tops - self.owned) if (self.path / t).exists() or (self.path / t).is_symlink()]
        if foreign:
            raise ForeignOutputError(
                f"--out {self.path}: {', '.join(foreign)} was not written by emer-coarse; move it away first"
            )
        self.owned |= tops
        self._save()

    def _claimed(self, *names: str) -> OutputFolder:
        self.owned |= set(names)
        self._save()
        return self

    def _save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        marker = {"written_by": WRITTEN_BY, "entries": sorted(self.owned)}
        replace_text(self.path / MARKER, json.dumps(marker, indent=1) + "\n")

    def write_text(self, name: str, text: str) -> Path:
        """Write OUT/name whole: readers see the old file or the new one, never a part."""
        self.claim(name)
        return replace_text(self.path / name, text)

    def remove(self, name: str) -> None:
        """Delete OUT/name if the engine wrote it; anything else stays."""
        target = self.path / name
        if not (target.exists() or target.is_symlink()):
            return
        if not self.owns(name):
            raise ForeignOutputError(f"{target} was not written by emer-coarse: it is not deleted; move it away")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()

    @contextlib.contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Hold OUT's lock while the block runs; a second holder is refused at once (OutputInUseError)."""
        self.claim(LOCK)
        lock_path = self.path / LOCK
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputInUseError(
                    f"--out {self.path} is being built by another build ({_holder(lock_path)}): "
                    "wait for it to finish, or choose another --out"
                ) from None
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "what": what,
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _holder(lock_path: Path) -> str:
    try:
        holder = json.loads(lock_path.read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}: {holder['what']}"
    except (OSError, ValueError, KeyError, TypeError):  # it is writing its details this very moment
        return f"see {lock_path}"


def replace_text(path: Path, text: str) -> Path:
    """Write `path` beside itself, then rename over it: a reader or a kill never meets half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path
