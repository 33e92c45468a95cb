"""Collect the LIBERO asset files a suite needs (read from each task's scene) into a folder or a split archive.

    python scripts/collect_libero_assets.py libero_spatial --out /tmp/spatial_assets       # a plain asset tree
    python scripts/collect_libero_assets.py libero_10 --archive .libero-assets --part-mib 60
        # -> .libero-assets1/, .libero-assets2/ ...: one xz-compressed tar split into <= 60 MiB parts (git-ignored)

Measured (2026-12-03): spatial 23 files / 18 MB as tar.xz, object 26 / 41 MB, goal 31 / 20 MB, libero_10 100 /
93 MB, libero_90 119 / 105 MB; all 130 tasks use 128 files (217 MiB unpacked) of the 622 MB tree. The recipe for
the GPU machine (64 MiB per transfer) is in docs/simulators.md.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
from pathlib import Path

from rlvla_cli.config.env import LiberoInitParams
from rlvla_cli.envs import libero as adapter
from rlvla_cli.envs.libero_collect import copy_subset, task_asset_files

UNPACK = """#!/usr/bin/env bash
# Gather this part into /tmp/libero_parts; once all {parts} parts are there, unpack them into /tmp/libero_assets.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p /tmp/libero_parts && cp "$here"/{name}.tar.xz.* /tmp/libero_parts/
if [ "$(ls /tmp/libero_parts/{name}.tar.xz.* | wc -l)" = {parts} ]; then
  mkdir -p /tmp/libero_assets && cat /tmp/libero_parts/{name}.tar.xz.* | tar -xJ -C /tmp/libero_assets
  echo "LIBERO assets for {name} in /tmp/libero_assets (set init_params.assets_dir to it)"
else
  echo "part stored; send the next .libero-assetsK folder"
fi
"""


def suite_files(suite: str, assets: Path) -> set[str]:
    benchmark, _ = adapter.import_libero(LiberoInitParams(task_suite_name=suite, assets_dir=str(assets)))
    files: set[str] = set()
    for task in adapter.load_suite_tasks(suite, None, benchmark):
        files |= task_asset_files(task.bddl_file, assets)[0]
    return files


def write_archive(files: set[str], assets: Path, prefix: Path, name: str, part_bytes: int) -> list[Path]:
    """One tar.xz of ``files`` split into parts of at most ``part_bytes``, each in its own ``prefix<K>`` folder."""
    from rlvla_cli.hub.libero_assets import ASSET_SUBDIRS

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for sub in ASSET_SUBDIRS:  # the folders the adapter looks for, even when the suite uses none of them
            info = tarfile.TarInfo(sub)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for rel in sorted(files):
            tar.add(assets / rel, arcname=rel)
    data = buffer.getvalue()
    chunks = [data[i:i + part_bytes] for i in range(0, len(data), part_bytes)]
    folders = []
    for k, chunk in enumerate(chunks, start=1):
        folder = Path(f"{prefix}{k}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.tar.xz.{k:02d}").write_bytes(chunk)
        (folder / "unpack.sh").write_text(UNPACK.format(name=name, parts=len(chunks)))
        folders.append(folder)
    return folders


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=[*adapter.SUITES_130, "libero_130"])
    parser.add_argument("--assets-dir", default=None, help="Source tree (default: the installed PyPI packages).")
    parser.add_argument("--out", default=None, help="Write a plain asset tree here.")
    parser.add_argument("--archive", default=None, help="Folder prefix for a split tar.xz (e.g. .libero-assets).")
    parser.add_argument("--part-mib", type=int, default=60, help="Largest archive part in MiB.")
    args = parser.parse_args(argv)
    if not args.out and not args.archive:
        parser.error("give --out DIR and/or --archive PREFIX")
    assets = adapter.require_assets(args.assets_dir)
    files = suite_files(args.suite, assets)
    print(f"{args.suite}: {len(files)} files, {sum(os.path.getsize(assets / f) for f in files) / 2**20:.1f} MiB")
    if args.out:
        copy_subset(files, assets, Path(args.out))
        print(f"tree in {args.out}")
    if args.archive:
        for folder in write_archive(files, assets, Path(args.archive), args.suite, args.part_mib * 2**20):
            print(f"{folder}: {sum(p.stat().st_size for p in folder.iterdir()) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
