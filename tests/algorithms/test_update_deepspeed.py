"""The DeepSpeed path runs the same update code: same parameters as the torch path after a few updates.

Runs DeepSpeed (CPU accelerator, gloo, one process) in a subprocess so its process group stays out of pytest.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    sys.path.insert(0, {tests_dir!r})
    from test_update import BanditPolicy, collect
    from rlvla_cli.algorithms import build_optimizer, compute_advantages, deepspeed_hooks, train_on_batch
    from rlvla_cli.config.algorithm import AlgorithmConfig

    def run(stage):
        torch.manual_seed(0)
        policy = BanditPolicy()
        optimizer = build_optimizer(policy, lr=3e-3, value_lr=1e-2)
        hooks = {{}}
        if stage is not None:
            import deepspeed
            ds_config = {{"train_batch_size": 64, "train_micro_batch_size_per_gpu": 16,
                         "gradient_accumulation_steps": 4, "gradient_clipping": 1.0,
                         "zero_optimization": {{"stage": stage}}}}
            engine, _, _, _ = deepspeed.initialize(model=policy, optimizer=optimizer, config=ds_config)
            hooks = dict(zip(("backward", "step"), deepspeed_hooks(engine)))
        cfg = AlgorithmConfig(update_epoch=2)
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            batch = collect(policy, 4, 32, gen)
            compute_advantages(batch, cfg)
            metrics = train_on_batch(policy, batch, optimizer, cfg, micro_batch_size=16, global_batch_size=64,
                                     clip_grad=1.0, generator=gen, **hooks)
        return [p.detach().flatten().tolist() for p in policy.parameters()], metrics

    reference, ref_metrics = run(None)
    zero2, ds_metrics = run(int(sys.argv[1]))
    diff = max(abs(a - b) for ra, rb in zip(reference, zero2) for a, b in zip(ra, rb))
    print("RESULT" + json.dumps({{"max_diff": diff, "ref": ref_metrics, "ds": ds_metrics}}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("stage", [0, 2])
def test_deepspeed_hooks_match_the_torch_path(stage, tmp_path):
    script = tmp_path / "ds_update.py"
    script.write_text(SCRIPT.format(tests_dir=str(Path(__file__).parent)))
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(script), str(stage)], capture_output=True, text=True, timeout=300,
        env={**os.environ, **env}, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT")[-1])
    assert result["max_diff"] < 1e-4, result
    assert result["ds"]["train/skipped_steps"] == 0
    assert result["ds"]["train/actor/grad_norm"] == pytest.approx(result["ref"]["train/actor/grad_norm"], rel=1e-3)
