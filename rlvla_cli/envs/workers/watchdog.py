"""Notice a dead env worker while the runtime is busy elsewhere (an update can take minutes).

The pool only hears of a death when it next talks to the worker (a broken pipe, an EOF). :class:`Watchdog` is a
daemon thread waiting on the workers' process sentinels (``multiprocessing.connection.wait``: the kernel wakes it
when a process exits), so a death is reported within ``interval_s`` whatever the main thread is doing. It only
records and reports; restarting is the pool's job, on the main thread, at its next use (no locking of the
shared-memory blocks against a running rollout).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait

DeathCallback = Callable[[int, int | None, str], None]


def reap(proc, timeout_s: float = 2.0) -> int | None:
    """Join ``proc`` until its exit code is known (two threads reaping one process race: the loser's join
    returns with the code still unset until the winner stores it)."""
    deadline = time.monotonic() + timeout_s
    proc.join(timeout=0.05)
    while proc.exitcode is None and time.monotonic() < deadline:
        proc.join(timeout=0.05)
    return proc.exitcode


def exit_reason(exitcode: int | None) -> str:
    """How a process ended, in words: ``killed by SIGKILL`` for a negative exit code, else ``exit code N``."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class Watchdog:
    """Watches ``procs()`` (the pool's current worker list, re-read every ``interval_s``) from a daemon thread.

    ``seen[w]``: monotonic time at which worker ``w`` was first seen dead (cleared by :meth:`forget` after a
    restart); ``on_death(w, pid, reason)`` is called once per death, from the watchdog thread.
    """

    def __init__(self, procs: Callable[[], list], interval_s: float = 0.5, on_death: DeathCallback | None = None):
        self._procs, self.interval_s, self.on_death = procs, interval_s, on_death
        self.seen: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rlvla-env-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                watched = {p.sentinel: (w, p) for w, p in enumerate(self._procs()) if w not in self.seen}
            if not watched:
                self._stop.wait(self.interval_s)
                continue
            try:
                ready = wait(list(watched), timeout=self.interval_s)
            except (OSError, ValueError):  # a sentinel closed under us by a restart: re-read the list
                continue
            for sentinel in ready:
                worker, proc = watched[sentinel]
                with self._lock:
                    current = self._procs()
                    replaced = worker >= len(current) or current[worker] is not proc
                    if replaced or worker in self.seen or self._stop.is_set():
                        continue
                    self.seen[worker] = time.monotonic()
                code = reap(proc)
                if self.on_death is not None:
                    try:
                        self.on_death(worker, proc.pid, exit_reason(code))
                    except Exception:  # noqa: BLE001 - a failing report must not stop the watching
                        pass

    def forget(self, worker: int) -> None:
        """Worker ``worker`` was replaced: watch its new process."""
        with self._lock:
            self.seen.pop(worker, None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * self.interval_s + 1.0)
