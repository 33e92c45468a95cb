"""Wilson intervals against hand-computed values; the JSON report's shape; the table."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from rlvla_cli.evaluation.report import EvalResult, TaskResult, aggregate, results_table, wilson_interval


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # 5/10: p=.5, z^2=3.8415, denom=1.38415, centre=(.5+.19207)/1.38415=.5,
        # half=1.96*sqrt(.025+.0096037)/1.38415=.26341 -> [.2366, .7634]
        (5, 10, 0.2366, 0.7634),
        # 0/10: centre=.19207/1.38415=.13876, half=1.96*sqrt(.0096037)/1.38415=.13877 -> [0, .2775]
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        # 1/1: denom=4.8415, centre=(1+1.92073)/4.8415=.60327, half=1.96*sqrt(3.8415/4)/4.8415=.39673
        (1, 1, 0.2065, 1.0),
        # 80/100: denom=1.038415, centre=(.8+.019207)/1.038415=.78891,
        # half=1.96*sqrt(.0016+.00009604)/1.038415=.077743 -> [.7112, .8666]
        (80, 100, 0.7112, 0.8666),
    ],
)
def test_wilson_interval_hand_computed(successes, trials, low, high):
    got_low, got_high = wilson_interval(successes, trials)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 3)[0] == 0.0 and wilson_interval(3, 3)[1] == 1.0  # exact, not 5e-17
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def _result() -> EvalResult:
    return EvalResult(
        tasks=[
            TaskResult("eval", "open the drawer", 2, lengths=[10, 20, 30, 40], returns=[1.0, 1.0, 0.0, 0.0]),
            TaskResult("eval", "pick the bowl", 4, lengths=[5, 5, 5, 5], returns=[1.0] * 4),
            TaskResult("ood_table", "pick the bowl", 0, lengths=[50, 50], returns=[0.0, 0.0]),
        ],
        videos=["videos/eval_0.mp4"],
        meta={"checkpoint": "ckpt", "greedy": True},
    )


def test_average_is_mean_of_task_rates_with_pooled_interval():
    result = _result()
    row = aggregate(result.tasks_of("eval"), "eval")
    assert row["success_rate"] == pytest.approx((0.5 + 1.0) / 2)
    assert row["pooled_success_rate"] == pytest.approx(6 / 8)
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx(wilson_interval(6, 8))
    assert row["mean_episode_len"] == pytest.approx((100 + 20) / 8)


def test_json_report_shape(tmp_path):
    path = _result().write_json(tmp_path / "report.json")
    report = json.loads(path.read_text())
    assert report["version"] == 1 and report["meta"]["greedy"] is True
    assert list(report["eval_sets"]) == ["eval", "ood_table"]
    first = report["eval_sets"]["eval"]["tasks"][0]
    assert set(first) == {
        "eval_set", "task", "episodes", "successes", "success_rate", "ci95_low", "ci95_high",
        "mean_episode_len", "mean_return",
    }  # fmt: skip
    assert first["success_rate"] == 0.5 and first["episodes"] == 4
    assert report["eval_sets"]["ood_table"]["average"]["success_rate"] == 0.0
    assert report["eval_sets"]["eval"]["episodes"][0]["lengths"] == [10, 20, 30, 40]
    assert report["videos"] == ["videos/eval_0.mp4"]


def test_metrics_mirror_env_names():
    metrics = _result().metrics()
    assert metrics["eval/success_once"] == pytest.approx(0.75)
    assert metrics["eval/ood_table/success_once"] == 0.0
    assert "eval/episode_len" in metrics and "eval/return" in metrics


def test_table_lists_tasks_averages_and_overall():
    console = Console(record=True, width=140)
    console.print(results_table(_result()))
    text = console.export_text()
    assert "open the drawer" in text and "ood_table" in text
    assert "50.0%" in text and "[15.0%, 85.0%]" in text  # 2/4 -> Wilson [.150, .850]
    assert text.count("average") == 3  # one per eval set + the overall row
