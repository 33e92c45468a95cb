"""`RootConfig`: the whole config tree and the cross-section rules (see `rules.py`)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from rlvla_cli.config.actor import ActorConfig
from rlvla_cli.config.algorithm import AlgorithmConfig
from rlvla_cli.config.base import StrictModel
from rlvla_cli.config.cluster import ClusterConfig
from rlvla_cli.config.env import EnvConfig
from rlvla_cli.config.merge import deep_merge
from rlvla_cli.config.rollout import RolloutConfig
from rlvla_cli.config.rules import check_rules, config_warnings
from rlvla_cli.config.runner import RunnerConfig
from rlvla_cli.config.sft import SFTConfig


class EnvGroupConfig(StrictModel):
    """The training envs and the evaluation envs (same simulator; eval defaults to a copy of train)."""

    train: EnvConfig = Field(description="Envs used for training rollouts; `env_type` picks the simulator.")
    eval: EnvConfig = Field(
        description="Envs used for evaluation (`rlvla eval`, runner.val_check_interval); keys not given here "
        "are inherited from `train` (same env_type), so omitting it evaluates on the training envs."
    )
    eval_sets: dict[str, EnvConfig] = Field(
        default_factory=dict,
        description="Extra evaluation sets (e.g. out-of-distribution splits), each reported on its own rows: "
        "name -> env keys that override `env.eval` (same env_type), e.g. "
        "{ood_objects: {init_params: {id: PutOnPlateInScene25VisionImage-v1}}}.",
    )

    @model_validator(mode="before")
    @classmethod
    def _eval_defaults_to_train(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("train"), dict):
            return data
        train, evaluation = data["train"], data.get("eval")
        if evaluation is None:
            data = {**data, "eval": copy.deepcopy(train)}
        elif isinstance(evaluation, dict) and evaluation.get("env_type", train.get("env_type")) == train.get(
            "env_type"
        ):
            data = {**data, "eval": deep_merge(train, evaluation)}  # eval inherits what it does not set
        return _merge_eval_sets(data)


def _merge_eval_sets(data: dict) -> dict:
    """Each extra eval set inherits every key it does not set from the (resolved) ``env.eval``."""
    base, sets = data.get("eval"), data.get("eval_sets")
    if not isinstance(base, dict) or not isinstance(sets, dict):
        return data
    merged = {}
    for name, override in sets.items():
        same_sim = isinstance(override, dict) and override.get("env_type", base.get("env_type")) == base.get("env_type")
        merged[name] = deep_merge(base, override) if same_sim else override
    return {**data, "eval_sets": merged}


class RootConfig(StrictModel):
    """A complete rlvla run: cluster, runner, algorithm, envs, rollout workers and the actor (trainer + model)."""

    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Nodes, GPUs and component placement.")
    runner: RunnerConfig = Field(default_factory=RunnerConfig, description="Loop length, checkpoints, logging.")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig, description="PPO / GRPO settings.")
    env: EnvGroupConfig = Field(description="Training and evaluation environments.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Rollout (inference) workers.")
    actor: ActorConfig = Field(description="Trainer settings and the policy model.")
    sft: SFTConfig | None = Field(None, description="Behaviour cloning (`rlvla sft`); ignored by `rlvla train`.")

    @model_validator(mode="after")
    def _cross_section_rules(self) -> RootConfig:
        check_rules(self)
        return self

    # Derived sizes (one definition each; commands, rules, placement and the runtime read them from here).
    @property
    def run_dir(self) -> Path:
        """Where the run writes: ``runner.output_dir``, else ``logger.log_path / logger.experiment_name``."""
        logger = self.runner.logger
        return Path(self.runner.output_dir or Path(logger.log_path) / logger.experiment_name)

    @property
    def total_steps(self) -> int:
        """Training steps of the run: ``runner.max_steps`` when > 0, else ``runner.max_epochs``."""
        return self.runner.max_steps if self.runner.max_steps > 0 else self.runner.max_epochs

    @property
    def chunk_steps_per_rollout(self) -> int:
        """T: chunk steps per rollout epoch (``max_steps_per_rollout_epoch`` counts env steps; the rules make it
        a whole number of chunks)."""
        return max(1, self.env.train.max_steps_per_rollout_epoch // self.actor.model.num_action_chunks)

    @property
    def samples_per_step(self) -> int:
        """Samples one training step collects: T x ``total_num_envs`` x ``rollout_epoch``."""
        train = self.env.train
        return self.chunk_steps_per_rollout * train.total_num_envs * train.rollout_epoch

    @property
    def optimizer_steps_per_step(self) -> int:
        """Optimizer steps of one training step: ``update_epoch`` x global batches (the last may be partial)."""
        return self.algorithm.update_epoch * math.ceil(self.samples_per_step / self.actor.global_batch_size)

    @property
    def total_optimizer_steps(self) -> int:
        """Optimizer steps of the whole run (the lr schedule's horizon)."""
        return self.total_steps * self.optimizer_steps_per_step

    def warnings(self) -> list[str]:
        """Legal but probably unintended settings, one sentence each."""
        return config_warnings(self)
