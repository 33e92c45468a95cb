"""RL algorithm core: pure tensor functions registered by name, the rollout batch and the update pass.

Public API: ``RolloutBatch`` / ``FlatBatch`` (batch.py), ``compute_advantages`` and the estimators
(advantages.py), PPO losses (losses.py), level helpers (levels.py), objectives by ``loss_type``
(objectives.py), ``update_epoch`` / ``train_on_batch`` and the ``Stepper`` contract (update.py), rollout metrics
(metrics.py). Flow-matching log-probs belong to pi0 / pi0.5: ``models/openpi/flow_matching.py``.
"""

from rlvla_cli.algorithms import objectives as _objectives  # noqa: F401  (registers the loss_type functions)
from rlvla_cli.algorithms.advantages import (
    AdvantageResult,
    compute_advantages,
    gae_from_batch,
    generalized_advantage_estimate,
    group_filter_mask,
    group_relative_advantages,
    grpo_from_batch,
    normalize_advantages,
)
from rlvla_cli.algorithms.batch import FlatBatch, RolloutBatch, split_indices
from rlvla_cli.algorithms.levels import (
    broadcast_advantages,
    flatten_action_steps,
    mask_after_first_done,
    masked_mean,
    reduce_per_level,
    unflatten_action_steps,
)
from rlvla_cli.algorithms.losses import explained_variance, mean_entropy, ppo_policy_loss, value_loss
from rlvla_cli.algorithms.metrics import rollout_metrics
from rlvla_cli.algorithms.registry import ADVANTAGES, LOSSES, Registry
from rlvla_cli.algorithms.update import Stepper, StepResult, train_on_batch, update_epoch

__all__ = [
    "ADVANTAGES",
    "LOSSES",
    "AdvantageResult",
    "FlatBatch",
    "Registry",
    "RolloutBatch",
    "StepResult",
    "Stepper",
    "broadcast_advantages",
    "compute_advantages",
    "explained_variance",
    "flatten_action_steps",
    "gae_from_batch",
    "generalized_advantage_estimate",
    "group_filter_mask",
    "group_relative_advantages",
    "grpo_from_batch",
    "mask_after_first_done",
    "masked_mean",
    "mean_entropy",
    "normalize_advantages",
    "ppo_policy_loss",
    "reduce_per_level",
    "rollout_metrics",
    "split_indices",
    "train_on_batch",
    "unflatten_action_steps",
    "update_epoch",
    "value_loss",
]
