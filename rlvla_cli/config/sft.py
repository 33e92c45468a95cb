"""`sft`: behaviour cloning from demonstrations (`rlvla sft`), the starting point RL improves on."""

from __future__ import annotations

from pydantic import Field

from rlvla_cli.config.base import StrictModel


class SFTConfig(StrictModel):
    """Supervised fine-tuning on a `rlvla collect-demos` dataset; batch sizes and optimiser come from `actor`."""

    dataset_path: str = Field(description="Directory written by `rlvla collect-demos` (data/*.parquet + meta.json).")
    unnorm_key: str | None = Field(
        None, description="Dataset-statistics key the actions are normalised with; null = the dataset's own "
        "(meta.json). Set `actor.model.unnorm_key` to the same value for RL from the SFT checkpoint."
    )
    max_demos: int | None = Field(
        None, ge=1, description="Use only the first N episodes (by seed): a deliberately small dataset gives a "
        "mediocre base policy for RL to improve."
    )
    num_epochs: int = Field(10, ge=1, description="Passes over the demonstration steps.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: run all epochs).")
    eval_interval: int = Field(
        0, ge=0, description="Evaluate in `env.eval` every N optimizer steps (0: only after training)."
    )
    eval_episodes: int = Field(16, ge=0, description="Episodes per evaluation (0: no evaluation).")
    save_interval: int = Field(
        0, ge=0, description="Also save the policy every N optimizer steps as `sft_policy_step<N>` (0: only the "
        "final `sft_policy`): with `eval_interval` it keeps the intermediate bases an RL study can start from."
    )
