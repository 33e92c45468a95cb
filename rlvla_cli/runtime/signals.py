"""SIGINT / SIGTERM handling: the first signal asks the loop to checkpoint and stop; children never orphan.

The driver installs :class:`StopRequest` around the loop; workers call :func:`ignore_interrupts` (a Ctrl-C in a
terminal reaches the whole process group, but only the driver decides when to stop) and
:func:`die_with_parent` (the kernel sends them SIGTERM if the driver dies without cleaning up).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


class StopRequest:
    """Context manager: while active, SIGINT / SIGTERM set ``requested`` (and ``signal_name``) instead of
    killing the process; a second SIGINT raises KeyboardInterrupt (the user insists). Handlers are restored on
    exit. Only the main thread can install handlers; elsewhere it is inert."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __call__(self) -> bool:
        return self.requested

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def ignore_interrupts() -> None:
    """Worker processes: SIGINT is the driver's business (it stops the children itself)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent exits (no orphans after a driver crash)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except OSError:
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)
