"""Two probes behind docs/results.md's diagnosis of the CPU-tier VLAs on the built-in task.

``where``: roll a saved policy out greedily on the built-in task and say where its gripper went: success, how
often it came within the success radius of the named object and of another object (a policy that ignores the
instruction reaches the others as often as the target), and the median closest approach to each.

    python scripts/vla_probe.py where --config configs/builtin_ppo_pi0_flow_noise.yaml \\
        --policy runs/pi0/sft/sft_policy --episodes 128 [env.eval.seed=0 env.eval.init_params.split=in_distribution]

``sft``: behaviour cloning of ``actor.model`` with one change to the vision path (towers frozen, another ViT
patch size, 2-D sine-cosine position embeddings in the towers) and the SFT input check
(``rlvla_cli.sft.sensitivity``) every ``--probe-every`` steps: does the change make the policy read its camera?

    python scripts/vla_probe.py sft --config configs/builtin_sft_openvla_oft.yaml --demos runs/demos \\
        --steps 300 --freeze vision

Both print a table and save JSON (``--out``) with the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlvla_cli.errors import UserError  # noqa: E402 (after the path insert, like the other scripts)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="probe", required=True)
    where = sub.add_parser("where", help="Where a saved policy's gripper goes.")
    where.add_argument("--policy", type=Path, required=True, help="Saved policy directory.")
    where.add_argument("--episodes", type=int, default=128, help="Episodes (in waves of --envs).")
    where.add_argument("--envs", type=int, default=64, help="Envs per wave.")
    sft = sub.add_parser("sft", help="SFT with one change to the vision path, with the input check on the way.")
    sft.add_argument("--demos", type=Path, required=True, help="`rlvla collect-demos` directory.")
    sft.add_argument("--steps", type=int, default=300, help="Optimizer steps.")
    sft.add_argument("--probe-every", type=int, default=150, help="Input check every N steps.")
    sft.add_argument("--freeze", choices=["towers", "vision"], default=None,
                     help="Keep the ViT towers (`towers`) or the towers and the projector (`vision`) at their init.")
    sft.add_argument("--patch-size", type=int, default=None, help="ViT patch size of the OpenVLA / OFT towers.")
    sft.add_argument("--sincos-pos", action="store_true", help="2-D sine-cosine tower position embeddings.")
    sft.add_argument("--no-eval", action="store_true", help="Skip the 64-episode held-out eval at each probe.")
    for p in (where, sft):
        p.add_argument("--config", required=True, help="rlvla config (the model and the built-in env).")
        p.add_argument("--out", type=Path, default=None, help="JSON output.")
        p.add_argument("overrides", nargs="*", help="Config overrides (a.b=c).")
    return parser.parse_args(argv)


# ---- where ------------------------------------------------------------------------------------------------
def reach_summary(min_dist: torch.Tensor, target: torch.Tensor, success: torch.Tensor, radius: float) -> dict:
    """min_dist float ``[N, K]`` (closest approach of the gripper to each of K objects), target int64 ``[N]``,
    success bool ``[N]`` -> rates of success, reaching the target, reaching another object, and the median
    closest approaches (table units)."""
    rows = torch.arange(len(target))
    to_target = min_dist[rows, target]
    others = min_dist.clone()
    others[rows, target] = math.inf
    to_other = others.min(dim=1).values
    return {
        "episodes": len(target),
        "success": success.float().mean().item(),
        "reached_target": (to_target < radius).float().mean().item(),
        "reached_other": (to_other < radius).float().mean().item(),
        "median_closest_target": to_target.median().item(),
        "median_closest_other": to_other.median().item(),
    }


def probe_where(args: argparse.Namespace) -> dict:
    from rlvla_cli.config.loader import load_config
    from rlvla_cli.envs.registry import build_env
    from rlvla_cli.models.registry import load_policy

    cfg = load_config(args.config, ["env.eval.auto_reset=false", *args.overrides])
    if cfg.env.eval.env_type != "builtin":
        raise UserError(f"{args.config} evaluates on {cfg.env.eval.env_type!r}; `where` reads the built-in task's "
                        "object positions", key="env.eval.env_type",
                        fix="use a config whose env.eval is the built-in task")
    policy = load_policy(cfg.actor.model, args.policy).eval()
    dists, targets, successes = [], [], []
    for wave in range(math.ceil(args.episodes / args.envs)):
        env = build_env(cfg.env.eval, num_envs=args.envs)
        obs, _ = env.reset(reset_state_ids=torch.arange(args.envs) + cfg.env.eval.seed + wave * args.envs)
        closest = torch.full(env.object_xy.shape[:2], math.inf)
        success = torch.zeros(args.envs, dtype=torch.bool)
        for _ in range(math.ceil(cfg.env.eval.max_episode_steps / policy.num_action_chunks)):
            with torch.no_grad():
                actions = policy.predict(obs, mode="eval").actions
            for c in range(actions.shape[1]):  # one step at a time, so no approach inside a chunk is missed
                result = env.chunk_step(actions[:, c:c + 1])
                success |= result.infos["success"].any(dim=1)
                gap = torch.linalg.vector_norm(env.object_xy - env.gripper_xy[:, None], dim=-1)
                closest = torch.minimum(closest, gap)
            obs = result.obs
        dists.append(closest)
        targets.append(env.target.clone())
        successes.append(success)
        env.close()
    summary = reach_summary(torch.cat(dists)[: args.episodes], torch.cat(targets)[: args.episodes],
                            torch.cat(successes)[: args.episodes], cfg.env.eval.init_params.success_radius)
    rows = [(k, f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in summary.items()]
    print("\n".join(f"{k:<24} {v}" for k, v in rows))
    return {"policy": str(args.policy), "overrides": args.overrides, **summary}


# ---- sft --------------------------------------------------------------------------------------------------
def sincos_2d(num_patches: int, dim: int) -> torch.Tensor:
    """MAE-style fixed 2-D sine-cosine position embedding ``[num_patches, dim]`` of a square grid: a quarter
    of the channels each for sin / cos of the column and of the row, frequencies 1 / 10000^(i / (dim / 4))."""
    grid = math.isqrt(num_patches)
    if grid * grid != num_patches or dim % 4:
        raise ValueError(f"need a square grid and dim divisible by 4, got {num_patches} patches, dim {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                                indexing="ij")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    parts = []
    for coord in (cols.flatten(), rows.flatten()):
        angle = coord[:, None] * omega[None]
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=1)


def projector_spread(policy, demos, samples: int = 32) -> dict:
    """OpenVLA / OFT: the projected patch features of ``samples`` demo images, ``[S, N, D]``: their mean norm
    per token and how much they vary across the images (norm of the deviation from the mean image's features
    over the norm of the features). None for other policies."""
    vla = getattr(policy, "vla", None)
    if vla is None or not hasattr(vla, "projector"):
        return {}
    probe = demos.select(torch.linspace(0, len(demos) - 1, samples).long())
    with torch.no_grad():
        inputs = policy.inputs_from_obs(probe.observations())
        features = vla.projector(vla.vision_backbone(policy.pixel_values(inputs)))
    deviation = features - features.mean(dim=0, keepdim=True)
    return {"projector_norm": features.norm(dim=-1).mean().item(),
            "projector_spread": (deviation.norm() / features.norm()).item()}


def _apply_patch_size(patch: int) -> None:
    from rlvla_cli.models import presets

    for name, dims in presets.OPENVLA_PRESETS.items():
        presets.OPENVLA_PRESETS[name] = dataclasses.replace(
            dims, dino=dataclasses.replace(dims.dino, patch_size=patch),
            siglip=dataclasses.replace(dims.siglip, patch_size=patch))


def probe_sft(args: argparse.Namespace) -> dict:
    from rlvla_cli.config.loader import load_config
    from rlvla_cli.models.registry import build_policy
    from rlvla_cli.runtime.launcher import init_distributed, shutdown_distributed
    from rlvla_cli.runtime.trainer import Trainer
    from rlvla_cli.sft.data import dataset_statistics, load_demos
    from rlvla_cli.sft.loop import _evaluate
    from rlvla_cli.sft.sensitivity import input_sensitivity
    from rlvla_cli.sft.update import sft_update

    cfg = load_config(args.config, [f"sft.dataset_path={args.demos}", *args.overrides])
    if args.patch_size:
        _apply_patch_size(args.patch_size)
    torch.manual_seed(cfg.runner.seed)
    demos = load_demos(args.demos, cfg.actor.model.num_action_chunks, None)
    init_distributed(0, 1, "cpu")
    policy = build_policy(cfg.actor.model, device="cpu")
    policy.set_dataset_statistics(*dataset_statistics(args.demos, None))
    for name, param in policy.named_parameters():
        tower = ".featurizer." in name or ".fused_featurizer." in name or ".vision_tower." in name
        projector = ".projector." in name or ".multi_modal_projector." in name
        if args.sincos_pos and tower and name.endswith("pos_embed"):
            with torch.no_grad():
                param.copy_(sincos_2d(param.shape[1], param.shape[2])[None])
        if (args.freeze == "towers" and tower) or (args.freeze == "vision" and (tower or projector)):
            param.requires_grad_(False)
    trainer = Trainer(policy, cfg.actor, cfg.algorithm, 1, "cpu", args.steps, update_fn=sft_update)
    generator, step, started, rows = torch.Generator().manual_seed(cfg.runner.seed), 0, time.time(), []
    batch = cfg.actor.global_batch_size
    rows.append({"step": 0, **projector_spread(policy, demos)})  # the features at init, before any update
    try:
        while step < args.steps:
            order = torch.randperm(len(demos), generator=generator)
            for begin in range(0, len(order) - batch + 1, batch):
                metrics = trainer.train(demos.select(order[begin: begin + batch]), step)
                step += 1
                if step % args.probe_every == 0 or step == args.steps:
                    rise = input_sensitivity(trainer.module, demos, micro_batch_size=cfg.actor.micro_batch_size)
                    row = {"step": step, "seconds": round(time.time() - started), "loss": metrics["train/sft/loss"],
                           **{k: rise.get(k) for k in ("image", "instruction", "state")},
                           **projector_spread(trainer.module, demos)}
                    if not args.no_eval:
                        row["held_out"] = _evaluate(trainer.module, cfg, 64, None).get("eval/success_once")
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                if step >= args.steps:
                    break
    finally:
        shutdown_distributed()
    variant = {"freeze": args.freeze, "patch_size": args.patch_size, "sincos_pos": args.sincos_pos}
    return {"config": args.config, "variant": variant, "overrides": args.overrides, "rows": rows}


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        result = probe_where(args) if args.probe == "where" else probe_sft(args)
    except UserError as err:  # a bad config, policy directory or demo directory: one paragraph, exit 2
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    result["machine"] = {"host": platform.node(), "cpus": torch.get_num_threads(), "python": platform.python_version()}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
