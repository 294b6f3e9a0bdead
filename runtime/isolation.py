"""Run native decoders in worker processes, so a decoder that aborts kills one item, not the run.

decord is known to abort() the whole process on some corrupt files. When that happens the pool breaks
and every item in it fails, the innocent ones included. Those go once more to a fresh pool; an item
that sees a second pool die with it is run alone, in a process of its own, so the culprit fails by
itself with a clear reason while everything else succeeds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from runtime.lifecycle import die_with_parent


class DecoderCrashed(RuntimeError):
    pass


class IsolatedPool:
    def __init__(self, workers: int) -> None:
        self._workers = workers
        # spawn: forking a process that runs threads (Prefect's, the gateway's) can deadlock the child.
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._pool = self._new_pool(workers)

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        """Workers that die with this process (runtime/lifecycle.py), however it ends. The kernel's
        signal follows the thread that started a worker: workers start on submit, from the gateway's
        loop thread (or, alone, from a thread of its executor), which outlive the pool."""
        return ProcessPoolExecutor(workers, mp_context=self._ctx, initializer=die_with_parent, initargs=(os.getpid(),))

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool(self._workers)

    def _alone(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._new_pool(1) as solo:
            try:
                return solo.submit(fn, *args).result()
            except BrokenProcessPool as exc:
                raise DecoderCrashed(
                    "the decoder process died on this file (native crash, e.g. abort on corrupt data)"
                ) from exc

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        for _ in range(2):
            pool = self._pool
            try:
                return await asyncio.wrap_future(pool.submit(fn, *args))
            except BrokenProcessPool:
                self._replace(pool)
        return await asyncio.to_thread(self._alone, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
