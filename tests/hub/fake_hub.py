"""A hub-shaped HTTP server on 127.0.0.1 for the download tests (the real huggingface_hub client talks to it).

It serves the endpoints snapshot_download calls (huggingface_hub 2.x, read from its source):
- ``GET /api/{models|datasets}/{repo}/revision/{rev}``: repo info with ``sha`` and ``siblings``;
- ``GET /api/{models|datasets}/{repo}/tree/{rev}?recursive=...``: the file listing (``oid`` = git blob sha1,
  ``lfs.oid`` = sha256 for LFS files) that the client caches and we verify against;
- ``HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` (sha256 for LFS files, the
  blob sha1 otherwise, as the hub does), ``X-Linked-Etag`` / ``X-Linked-Size`` for LFS, ``Content-Length``,
  ``Accept-Ranges``; a ``Range`` GET answers 206 with ``Content-Range``.
Faults: ``drop_once`` (send half a file then close the connection, once), ``corrupt`` (serve other bytes of the
same length while advertising the real checksums), ``stall`` (send half a file, then wait until released).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_blob_sha1(data: bytes) -> str:
    """Git's blob id: sha1 over 'blob <len>\\0' + data (what the hub reports as a file's oid)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    lfs: set[str] = field(default_factory=set)
    commit: str = COMMIT

    def etag(self, path: str) -> str:
        data = self.files[path]
        return hashlib.sha256(data).hexdigest() if path in self.lfs else git_blob_sha1(data)


@dataclass
class HubState:
    repos: dict[tuple[str, str], FakeRepo] = field(default_factory=dict)
    drop_once: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    stall: set[str] = field(default_factory=set)
    drop_at: int | None = None  # bytes sent before a drop / stall (None: half the body)
    release: threading.Event = field(default_factory=threading.Event)
    stalled: threading.Event = field(default_factory=threading.Event)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gets(self, filename: str) -> list[str | None]:
        """Range headers of every GET of a file (None: a full request)."""
        return [rng for method, path, rng in self.log if method == "GET" and path.endswith("/" + filename)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send_json(self, payload, status: int = 200, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        self._send_json({"error": code}, status, {"X-Error-Code": code})

    def _repo(self, repo_type: str, repo_id: str) -> FakeRepo | None:
        return self.state.repos.get((repo_type, repo_id))

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        with self.state.lock:
            self.state.log.append((method, path, self.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 4:
            what, rev = (parts[4], parts[5]) if len(parts) >= 6 else ("revision", "main")
            self._api(parts[1].rstrip("s"), "/".join(parts[2:4]), what, rev)
            return
        repo_type = "model"
        if parts[0] in ("datasets", "models"):
            repo_type, parts = parts[0].rstrip("s"), parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(method, repo_type, "/".join(parts[:2]), parts[3], "/".join(parts[4:]))
            return
        self._error(404, "EntryNotFound")

    def _api(self, repo_type: str, repo_id: str, what: str, rev: str) -> None:
        repo = self._repo(repo_type, repo_id)
        if repo is None:
            self._error(404, "RepoNotFound")
        elif rev not in ("main", repo.commit):
            self._error(404, "RevisionNotFound")
        elif what == "revision":
            siblings = [{"rfilename": name} for name in repo.files]
            self._send_json({"id": repo_id, "sha": repo.commit, "private": False, "siblings": siblings})
        elif what == "tree":
            entries = []
            for name, data in repo.files.items():
                entry = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
                if name in repo.lfs:
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entries.append(entry)
            self._send_json(entries)
        else:
            self._error(404, "EntryNotFound")

    def _resolve(self, method: str, repo_type: str, repo_id: str, rev: str, filename: str) -> None:
        repo = self._repo(repo_type, repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound")
        if rev not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound")
        if filename not in repo.files:
            return self._error(404, "EntryNotFound")
        data = repo.files[filename]
        if method == "GET" and filename in self.state.corrupt:
            data = bytes(b ^ 0xFF for b in data)  # same length, other content
        start = 0
        rng = self.headers.get("Range")
        if method == "GET" and rng and rng.startswith("bytes="):
            start = int(rng[len("bytes=") :].split("-")[0])
        body = data[start:]
        self.send_response(206 if start else 200)
        etag = repo.etag(filename)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", repo.commit)
        if filename in repo.lfs:
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if method == "HEAD":
            return None
        self._send_body(filename, body)
        return None

    def _send_body(self, filename: str, body: bytes) -> None:
        half = len(body) // 2 if self.state.drop_at is None else self.state.drop_at
        with self.state.lock:
            drop = filename in self.state.drop_once
            self.state.drop_once.discard(filename)
            stall = filename in self.state.stall
        if drop or stall:
            self.wfile.write(body[:half])
            self.wfile.flush()
            if stall:
                self.state.stalled.set()
                self.state.release.wait(timeout=30)
            self.close_connection = True
            return
        self.wfile.write(body)
