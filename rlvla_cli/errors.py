"""User-facing errors: one clear paragraph, exit code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad config, bad flag, missing asset).

    The CLI prints ``str(error)`` as one paragraph and exits with code 2. Messages should name the file,
    the key path, what is wrong and the fix.
    """

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None, fix: str | None = None):
        parts = []
        if file:
            parts.append(f"{file}:")
        if key:
            parts.append(f"`{key}`:")
        parts.append(message.rstrip("."))
        text = " ".join(parts) + "."
        if fix:
            text += f" Fix: {fix.rstrip('.')}."
        super().__init__(text)
        self.file, self.key, self.fix = file, key, fix


class ConfigError(UserError):
    """A config file or override is invalid."""


class AssetError(UserError):
    """A model, dataset or simulator asset is missing or cannot be downloaded."""


class WorkerError(RuntimeError):
    """A worker process died or reported an exception; the runtime stops cleanly and re-raises this."""


class WorkerDied(WorkerError):
    """An env worker process is gone (killed, crashed, or it raised and exited): the runtime may restart it.

    worker: its index in the pool; pid; exitcode (negative: killed by that signal); why: a short reason (the
    signal's name, or the exception the worker reported); details: the worker's traceback when it reported one.
    """

    def __init__(self, worker: int, pid: int | None, exitcode: int | None, why: str, details: str = ""):
        super().__init__(f"env worker {worker} (pid {pid}) {why}")
        self.worker, self.pid, self.exitcode, self.why, self.details = worker, pid, exitcode, why, details


class RuntimeFault(Exception):
    """A fault outside the user's config ended the run (a worker beyond its restarts, a trainer rank dying, a CUDA
    error, out of memory): the CLI prints ``str(error)`` as one paragraph (what died, why if known, what was
    kept, what to do) and exits with code 3; the traceback only with ``--debug``."""

    exit_code = 3

    def __init__(self, what: str, *, why: str | None = None, kept: str | None = None, fix: str | None = None):
        text = what.rstrip(".") + (f" ({why.rstrip('.')})" if why else "") + "."
        if kept:
            text += f" {kept.rstrip('.')}."
        if fix:
            text += f" Fix: {fix.rstrip('.')}."
        super().__init__(text)
        self.what, self.why, self.kept, self.fix = what, why, kept, fix


class CheckpointError(UserError):
    """A checkpoint on disk is truncated, corrupted or unreadable (the message names the file)."""


def ensure_output_dir(path, key: str):
    """Create the output directory ``path`` (and parents) before any work starts; a path that cannot be
    created or written is a user mistake (``UserError`` naming ``key``), not a traceback an hour in."""
    import os
    from pathlib import Path

    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output directory {directory} ({err.strerror or err})", key=key,
                        fix="choose a writable location") from err
    if not os.access(directory, os.W_OK):
        raise UserError(f"output directory {directory} is not writable", key=key, fix="choose a writable location")
    return directory
