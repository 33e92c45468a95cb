"""ManiSkill task knowledge: instructions, registration checks, asset checks (with user-facing errors)."""

from __future__ import annotations

import difflib
import importlib
import re

from rlvla_cli.errors import AssetError, UserError

# Instructions for ManiSkill's offline tasks (which have none of their own); described from each task's scene.
INSTRUCTIONS: dict[str, str] = {
    "PickCube-v1": "pick up the red cube and move it to the green goal",
    "PickCubeSO100-v1": "pick up the red cube and lift it",
    "PickCubeWidowXAI-v1": "pick up the red cube and move it to the green goal",
    "PushCube-v1": "push the cube onto the red and white target",
    "PullCube-v1": "pull the cube onto the red and white target",
    "StackCube-v1": "stack the red cube on top of the green cube",
    "StackPyramid-v1": "stack the three cubes into a pyramid",
    "PokeCube-v1": "use the peg to push the cube to the goal",
    "PlaceSphere-v1": "place the sphere into the bin",
    "LiftPegUpright-v1": "lift the peg and stand it upright",
    "PegInsertionSide-v1": "insert the peg into the hole in the side of the box",
    "PlugCharger-v1": "plug the charger into the receptacle",
    "PushT-v1": "push the T-shaped block onto the target outline",
    "PullCubeTool-v1": "use the tool to pull the cube closer",
    "RollBall-v1": "push the ball so that it rolls into the goal region",
    "TwoRobotPickCube-v1": "pick up the cube and move it to the goal",
    "TwoRobotStackCube-v1": "stack the blue cube on top of the green cube",
    "PickSingleYCB-v1": "pick up the object and move it to the goal",
    "PickClutterYCB-v1": "pick up the target object from the clutter",
    "TurnFaucet-v1": "turn the faucet handle",
    "OpenCabinetDrawer-v1": "open the cabinet drawer",
    "PutCarrotOnPlateInScene-v1": "put carrot on plate",
    "PutEggplantInBasketScene-v1": "put eggplant into yellow basket",
    "StackGreenCubeOnYellowCubeBakedTexInScene-v1": "stack the green block on the yellow block",
    "PutSpoonOnTableClothInScene-v1": "put the spoon on the towel",
}

RLINF_FORK_HINT = re.compile(r"^PutOnPlateInScene|^PutCarrotOnPlate.*-v[2-9]|InScene25")


def default_instruction(env_id: str) -> str:
    """The table's instruction, or one derived from the id ("PushCube-v1" -> "push cube")."""
    if env_id in INSTRUCTIONS:
        return INSTRUCTIONS[env_id]
    words = re.findall(r"[A-Z][a-z]*|[a-z]+|\d+", env_id.split("-v")[0])
    return " ".join(w.lower() for w in words) or env_id


def import_extra_modules(modules: list[str]) -> None:
    """Import modules that register extra env ids; a missing one is a user error."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise UserError(
                f"cannot import {name!r} listed in init_params.extra_modules ({err})",
                key="env.*.init_params.extra_modules",
                fix="install the package that provides it, or remove it from the list",
            ) from err


def check_registered(env_id: str) -> None:
    """Raise a UserError naming the fix when ``env_id`` is not a registered ManiSkill env."""
    from mani_skill.utils.registration import REGISTERED_ENVS

    if env_id in REGISTERED_ENVS:
        return
    if RLINF_FORK_HINT.search(env_id):
        raise UserError(
            f"ManiSkill env {env_id!r} is not registered: it comes from RLinf's ManiSkill fork, not mani_skill "
            "itself",
            key="env.*.init_params.id",
            fix="install RLinf's ManiSkill fork (pip install it into this environment), list the module that "
            "registers the env in init_params.extra_modules, and fetch its scenes with "
            "`rlvla download-assets maniskill`",
        )
    close = difflib.get_close_matches(env_id, list(REGISTERED_ENVS), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UserError(
        f"ManiSkill env {env_id!r} is not registered.{hint}",
        key="env.*.init_params.id",
        fix="use a registered id (see `python -m mani_skill.examples.demo_random_action -h`), or import the "
        "module that registers it via init_params.extra_modules",
    )


def _data_sources(group: str, seen: set[str] | None = None) -> set[str]:
    """Data source ids a ManiSkill env id or data group needs (groups nest)."""
    from mani_skill.utils.assets import data

    seen = set() if seen is None else seen
    if group in seen:
        return set()
    seen.add(group)
    if group in data.DATA_SOURCES:
        return {group}
    sources: set[str] = set()
    for member in data.DATA_GROUPS.get(group, []):
        sources |= _data_sources(member, seen)
    return sources


def missing_assets(env_id: str) -> list[str]:
    """Data source ids that ``env_id`` needs and that are not on disk (sorted)."""
    from mani_skill.utils.assets import data

    return sorted(s for s in _data_sources(env_id) if not data.is_data_source_downloaded(s))


def check_assets(env_id: str) -> None:
    """Raise an AssetError naming the download when ``env_id``'s assets are absent."""
    missing = missing_assets(env_id)
    if not missing:
        return
    from mani_skill import ASSET_DIR

    shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    raise AssetError(
        f"ManiSkill env {env_id!r} needs assets that are not in {ASSET_DIR} ({shown}); they cannot be fetched "
        "offline",
        key="env.*.init_params.id",
        fix=f"on a machine with internet run `rlvla download-assets maniskill` (RLinf scenes) or "
        f"`python -m mani_skill.utils.download_asset {missing[0]}`, then copy the folder to {ASSET_DIR} "
        "(or point MS_ASSET_DIR at it)",
    )
