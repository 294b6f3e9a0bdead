"""What a run starts ends with it: killed, terminated or interrupted, it leaves no process behind.

A build starts processes of three kinds, and each needs its own way to learn that the run is over:

- decoder workers (runtime/isolation.py) are the engine's own children: each asks the kernel, as it
  starts, to be killed when its parent dies (Linux `prctl(PR_SET_PDEATHSIG)`, `die_with_parent`);
- vLLM servers (annotators/server.py) run in a session of their own (stopped as a group), under a small
  warden (`python runtime/lifecycle.py warden PID -- CMD`) that kills the group once the run's process
  is gone. Not PDEATHSIG: it fires when the *thread* that started the child exits, and servers are
  started from short-lived threads;
- processes libraries start: Prefect's temporary API server (`SubprocessASGIServer`, a uvicorn child
  started by Prefect itself) and multiprocessing's resource tracker. Nothing of theirs can be hooked
  without patching Prefect, so `install()` starts a watchdog beside the run instead: it notes the run's
  descendants (from /proc, pid and start time) twice a second and, once the run's process is gone
  however it ended, stops whatever of them is still alive (SIGTERM, then SIGKILL). A process group or a
  subreaper would not do: Prefect's server and vLLM leave the group, and a subreaper dies with the run.

`install()` also turns SIGTERM into an orderly shutdown (the `Terminated` exception, a KeyboardInterrupt,
raised in the main thread), so the run's own clean-up (vLLM servers stopped, the checkpoint closed,
Prefect's server stopped at exit) runs as it does for Ctrl-C.

Run as a script, this file is the watchdog and the warden: the standard library only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_INTERVAL_S = 0.5
GRACE_S = 5.0  # between SIGTERM and SIGKILL: vLLM and uvicorn shut down in well under that


class Terminated(KeyboardInterrupt):
    """The run was asked to stop (SIGTERM): unwinds like Ctrl-C, so every clean-up on the way runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """In a child, first thing: be sent `sig` when the process (thread, strictly) that started it dies.
    If the parent is already gone (it died before this call), die now. A no-op where prctl is missing."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return  # refused (a seccomp profile): the watchdog still covers it
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


# --- the run's side -----------------------------------------------------------------------------

_installed: subprocess.Popen | None = None


def install() -> None:
    """In the run's main process, once (the CLI calls it first thing): SIGTERM becomes `Terminated`, and
    a watchdog stops the run's leftover descendants when the run's process ends, however it ends."""
    global _installed
    if _installed is not None and _installed.poll() is None:
        return
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    if Path("/proc/self/stat").exists():  # the watchdog reads /proc (Linux); elsewhere children may outlive
        _installed = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "watch", str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C or a signal to the run's group must not take the watchdog first.
            start_new_session=True,
        )


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once (the watchdog cleans up)
    raise Terminated(signum)


def warden_command(command: list[str]) -> list[str]:
    """`command` under a warden that stops its process group when this process dies (see the module doc)."""
    return [sys.executable, str(Path(__file__).resolve()), "warden", str(os.getpid()), "--", *command]


# --- the watchdog's and the warden's side (run as a script) -------------------------------------


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, start time, process group) of a living, not zombie, process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return None if fields[0] == "Z" else (int(fields[1]), int(fields[19]), int(fields[2]))


def _processes() -> dict[int, tuple[int, int, int]]:
    return {int(e): stat for e in os.listdir("/proc") if e.isdigit() and (stat := _stat(int(e))) is not None}


def _descendants(roots: set[int]) -> dict[int, int]:
    """pid -> start time of every living process below `roots`."""
    children: dict[int, list[int]] = {}
    for pid, stat in _processes().items():
        children.setdefault(stat[0], []).append(pid)
    found: dict[int, int] = {}
    todo = [c for root in roots for c in children.get(root, [])]
    while todo:
        pid = todo.pop()
        if pid not in found and (stat := _stat(pid)) is not None:
            found[pid] = stat[1]
            todo += children.get(pid, [])
    return found


def _signal_all(procs: dict[int, int], sig: int) -> None:
    for pid, start in procs.items():
        if (stat := _stat(pid)) is not None and stat[1] == start:  # the same process, not a reused pid
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def _alive(procs: dict[int, int]) -> dict[int, int]:
    return {pid: start for pid, start in procs.items() if (stat := _stat(pid)) is not None and stat[1] == start}


def _stop(procs: dict[int, int]) -> None:
    """SIGTERM, a grace period, then SIGKILL for whatever is left."""
    _signal_all(procs, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while (procs := _alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_all(procs, signal.SIGKILL)


def watch(parent: int) -> None:
    """Note `parent`'s descendants until it is gone (this process is then re-parented), then stop them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    me = _stat(parent)
    if me is None:
        return
    _, parent_start, parent_group = me
    known: dict[int, int] = {}
    while os.getppid() == parent:
        known = _alive(known) | _descendants({parent})
        time.sleep(WATCH_INTERVAL_S)
    # Children started since the last look: orphans now (re-parented, to init or a subreaper), still in
    # the run's process group unless they left it, started after the run; and whatever the known started.
    reaper = os.getppid()
    orphans = {
        pid: start
        for pid, (ppid, start, group) in _processes().items()
        if ppid == reaper and group == parent_group and start >= parent_start
    }
    left = _alive(known) | orphans
    left |= _descendants(set(left))
    left.pop(os.getpid(), None)
    _stop(left)


def warden(parent: int, command: list[str]) -> int:
    """Run `command` in this process's group; stop what it started when `parent` dies; exit with the
    command's status. Signals are for the group (VLLMServer.stop signals it, reaching the command
    directly): the warden ignores them rather than send the command a second one (uvicorn takes a
    second SIGTERM as "exit now"), and SIGKILL, which stop() ends with, ends it anyway."""
    child = subprocess.Popen(command)  # first: ignored dispositions would be inherited across exec
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        try:
            return child.wait(timeout=WATCH_INTERVAL_S)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            group = _descendants({os.getpid()})
            _stop(group)
            return child.wait()


if __name__ == "__main__":
    role, pid = sys.argv[1], int(sys.argv[2])
    if role == "watch":
        watch(pid)
    elif role == "warden":
        sys.exit(warden(pid, sys.argv[sys.argv.index("--") + 1 :]))
    else:
        sys.exit(f"usage: {sys.argv[0]} watch PID | warden PID -- COMMAND...")
