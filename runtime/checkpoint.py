"""Stage results persisted per clip, keyed by (stage, stage config hash, clip content hash).

Why not Prefect's task cache alone: it stores whole task results, so a batch killed halfway would
redo the clips it had finished. This store is written the moment each clip's stage answers, so a
killed run resumes exactly where it stopped, and a changed prompt or model re-runs only that stage.
SQLite (stdlib) gives atomic writes that survive a kill, and one file instead of millions.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    stage TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    clip_sha TEXT NOT NULL,
    ok INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (stage, config_hash, clip_sha)
)
"""


class Checkpoint:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Several processes (Dask workers on one host) may write at once: wait for the lock, don't fail.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=120)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def get(self, stage: str, config_hash: str, clip_sha: str) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT payload FROM results WHERE stage=? AND config_hash=? AND clip_sha=?",
                (stage, config_hash, clip_sha),
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, stage: str, config_hash: str, clip_sha: str, payload: dict, ok: bool) -> None:
        blob = json.dumps(payload, ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)", (stage, config_hash, clip_sha, int(ok), blob)
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
