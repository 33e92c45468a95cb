"""`rlvla eval` and in-training evaluation: episodes per task, Wilson intervals, table, JSON report, videos."""

from rlvla_cli.evaluation.report import EvalResult, TaskResult, results_table, wilson_interval
from rlvla_cli.evaluation.runner import evaluate_policy, evaluate_sets, open_eval_env

__all__ = [
    "EvalResult",
    "TaskResult",
    "evaluate_policy",
    "evaluate_sets",
    "open_eval_env",
    "results_table",
    "wilson_interval",
]
