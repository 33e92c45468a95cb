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
