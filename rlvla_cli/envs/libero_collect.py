"""The asset files a LIBERO task (or suite) needs, read from the scene robosuite builds, and a copy of just those.

robosuite merges the arena, robot and every object XML into one MJCF string with absolute ``file=`` paths before
compiling it. :func:`task_scene_xml` builds a task env only up to that string (the compile is interrupted, so no
render context is created: about 1 s per task instead of ~10 s), and :func:`referenced_files` reads the paths.
Used to check that every task's scene is complete, and to send a small asset subset to a machine that only
accepts a few tens of MiB per transfer (docs/simulators.md).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

_FILE_ATTR = re.compile(r'\bfile="([^"]+)"')


class _SceneBuilt(Exception):
    """Raised in place of MuJoCo's compile to carry the merged scene XML out of the env constructor."""

    def __init__(self, xml: str):
        super().__init__("scene built")
        self.xml = xml


def task_scene_xml(bddl_file: str) -> tuple[str, set[Path]]:
    """(the merged MJCF string of the task in ``bddl_file``, the XML files parsed to build it).

    hf-libero must be imported with its config and asset path set (``libero.import_libero``).
    """
    import xml.etree.ElementTree as ET

    from libero.libero.envs import OffScreenRenderEnv
    from robosuite.utils.binding_utils import MjSim

    original_compile, original_parse = MjSim.__dict__["from_xml_string"], ET.parse
    parsed: set[Path] = set()

    def interrupt(cls, xml, *args, **kwargs):
        raise _SceneBuilt(xml)

    def recording_parse(source, *args, **kwargs):
        if isinstance(source, (str, Path)):
            parsed.add(Path(source))
        return original_parse(source, *args, **kwargs)

    MjSim.from_xml_string, ET.parse = classmethod(interrupt), recording_parse
    try:
        OffScreenRenderEnv(bddl_file_name=bddl_file, camera_heights=16, camera_widths=16)
    except _SceneBuilt as built:
        return built.xml, parsed
    finally:
        MjSim.from_xml_string, ET.parse = original_compile, original_parse
    raise RuntimeError(f"robosuite built {bddl_file} without compiling a scene")


def referenced_files(xml: str) -> set[Path]:
    """Every ``file=`` path of an MJCF string (meshes, textures, heightfields)."""
    return {Path(match) for match in _FILE_ATTR.findall(xml)}


def task_asset_files(bddl_file: str, assets_root: Path) -> tuple[set[str], set[Path]]:
    """(paths relative to ``assets_root`` the task uses, absolute paths outside it: robosuite's own robot files).

    The files are the scene's meshes and textures and the arena / object XML files that were parsed.
    """
    inside, outside = set(), set()
    root = assets_root.resolve()
    xml, parsed = task_scene_xml(bddl_file)
    for path in referenced_files(xml) | parsed:
        resolved = path.resolve()
        if resolved.is_relative_to(root):
            inside.add(str(resolved.relative_to(root)))
        else:
            outside.add(resolved)
    return inside, outside


def copy_subset(files: set[str], assets_root: Path, out_dir: Path) -> int:
    """Copy ``files`` (relative to ``assets_root``) into ``out_dir`` with the same layout; returns the bytes copied.

    Folders that mark an asset tree are created even when empty, so the adapter recognises the subset as a tree.
    """
    from rlvla_cli.hub.libero_assets import ASSET_SUBDIRS

    total = 0
    for sub in ASSET_SUBDIRS:
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    for rel in sorted(files):
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(assets_root / rel, target)
        total += target.stat().st_size
    return total
