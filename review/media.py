"""Clip URLs that Label Studio itself serves: its local-files serving (`/data/local-files/?d=PATH`).

Label Studio serves a file under LOCAL_FILES_DOCUMENT_ROOT only to users of a project that has a
local-storage connection whose folder holds the file (and only with LOCAL_FILES_SERVING_ENABLED=true).
So the clips stay where the corpus keeps them: each project gets one serving-only storage per clip
folder, and a task's URL is the clip's path relative to the document root.
"""

from __future__ import annotations

import os
from urllib.parse import quote

DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"


class MediaError(ValueError):
    """A clip Label Studio could not serve as configured; the message says what to change."""


def document_root(explicit: str | os.PathLike | None = None) -> str:
    """The folder Label Studio serves local files from: as given, else the variable Label Studio itself reads."""
    root = explicit or os.environ.get(DOCUMENT_ROOT_ENV)
    if not root:
        raise MediaError(
            f"{DOCUMENT_ROOT_ENV} is not set: start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
            f"and {DOCUMENT_ROOT_ENV}=<a folder above the corpus>, and give the same folder here"
        )
    return os.path.abspath(root)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def clip_folder(path: str | os.PathLike, root: str) -> str:
    """The folder a storage connection must cover for `path`, checked against Label Studio's rules."""
    folder = os.path.dirname(os.path.abspath(path))
    if not _inside(folder, root) or folder == root:
        raise MediaError(
            f"{path} is not in a folder below the local-files document root {root}: Label Studio serves only "
            f"files in subfolders of {DOCUMENT_ROOT_ENV}; set it to a folder above the corpus"
        )
    return folder


def local_files_url(path: str | os.PathLike, root: str) -> str:
    """The URL, relative to Label Studio's own address, at which it serves the file at `path`."""
    clip_folder(path, root)
    return "/data/local-files/?d=" + quote(os.path.relpath(os.path.abspath(path), root))


def covered(folder: str, storage_paths: list[str]) -> bool:
    return any(_inside(folder, os.path.normpath(p)) for p in storage_paths)
