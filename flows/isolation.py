"""Run native decoders in worker processes, so a decoder that aborts kills one item, not the run.

decord is known to abort() the whole process on some corrupt files. A process pool shares that risk
among the items in flight when it happens (the pool breaks and all of them fail), so those items are
retried one per fresh process: the culprit fails alone, with a clear reason, and the rest succeed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable


class DecoderCrashed(RuntimeError):
    pass


class IsolatedPool:
    def __init__(self, workers: int) -> None:
        self._workers = workers
        # spawn: forking a process that runs threads (Prefect's, the gateway's) can deadlock the child.
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._pool = ProcessPoolExecutor(workers, mp_context=self._ctx)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = ProcessPoolExecutor(self._workers, mp_context=self._ctx)

    def _alone(self, fn: Callable[..., Any], *args: Any) -> Any:
        with ProcessPoolExecutor(1, mp_context=self._ctx) as solo:
            try:
                return solo.submit(fn, *args).result()
            except BrokenProcessPool as exc:
                raise DecoderCrashed("the decoder process died on this file (native crash, e.g. abort on corrupt data)") from exc

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args))
        except BrokenProcessPool:
            self._replace(pool)
            return await asyncio.to_thread(self._alone, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
