"""Fault drill (issue 19): real `rlvla train` processes on the built-in quickstart, one fault each, checked.

Each row starts `python -m rlvla_cli train` (the quickstart shrunk to seconds per step), injects one fault, and
checks what a user would: the exit code, the last message (one paragraph, no traceback), the checkpoints on disk
(the last completed update kept, every committed one complete), the process tree (every descendant gone within
a few seconds) and /dev/shm (every segment the run mapped is unlinked). It prints a table and writes JSON.

    python scripts/fault_drill.py                      # every row (~5 min on 2 busy cores)
    python scripts/fault_drill.py --rows env_worker_kill9,corrupt_checkpoint --json out.json
    python scripts/fault_drill.py --soak 500           # 500 quickstart steps, RSS and /dev/shm sampled

Faults are injected from outside (signals, kill -9, a damaged file, a 2 MiB tmpfs) or through the runner's drill
hooks (rlvla_cli/runtime/faults.py: a pause at a known stage, NaN rewards). Detection time: from the kill to
the driver's "died" line. The table in docs/reliability.md comes from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

FAST = ["runner.val_check_interval=-1", "runner.logger.logger_backends=[]", "env.train.total_num_envs=32",
        "env.train.max_steps_per_rollout_epoch=8", "env.train.max_episode_steps=8", "actor.micro_batch_size=32",
        "actor.global_batch_size=64", "algorithm.update_epoch=1"]
SHM = re.compile(r"/dev/shm/(rlvla_\w+)")


@dataclass
class Row:
    """One drill result (a row of the table)."""

    name: str
    fault: str
    expected: str
    passed: bool = False
    exit_code: int | None = None
    detect_s: float | None = None  # fault -> the driver's report of it
    exit_s: float | None = None  # fault -> the faulted driver's exit (kill -9 of the driver: -> its children gone)
    lost: str = ""
    checks: dict[str, bool] = field(default_factory=dict)
    notes: str = ""


class Train:
    """One `rlvla train` process: output lines with timestamps, descendants and mapped segments sampled."""

    def __init__(self, run_dir: Path, overrides: list[str], env: dict[str, str] | None = None, fast: bool = True):
        self.run_dir = run_dir
        self.lines: list[tuple[float, str]] = []
        self.pids: set[int] = set()
        self.segments: set[str] = set()
        command = [sys.executable, "-m", "rlvla_cli", "train", f"runner.output_dir={run_dir}",
                   *(FAST if fast else []), *overrides]
        child_env = {**os.environ, "COLUMNS": "400", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=child_env, start_new_session=True)
        self.started = time.monotonic()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._sample, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _sample(self) -> None:
        while self.proc.poll() is None:
            try:
                family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in family:
                self.pids.add(proc.pid)
                try:
                    self.segments |= set(SHM.findall(Path(f"/proc/{proc.pid}/maps").read_text()))
                except OSError:
                    pass
            time.sleep(0.2)

    # ------------------------------------------------------------------------------------------ waiting
    def wait_line(self, pattern: str, timeout: float = 180.0, after: float = 0.0) -> float | None:
        """Time of the first output line matching ``pattern`` (printed after ``after``), or None."""
        regex, deadline = re.compile(pattern), time.monotonic() + timeout
        while time.monotonic() < deadline:
            for when, line in list(self.lines):
                if when >= after and regex.search(line):
                    return when
            if self.proc.poll() is not None and time.monotonic() > deadline - timeout + 1:
                time.sleep(0.3)  # the reader may still hold the last lines
                return next((w for w, line in self.lines if w >= after and regex.search(line)), None)
            time.sleep(0.05)
        return None

    def wait_steps(self, steps: int, timeout: float = 180.0) -> bool:
        """Until metrics.jsonl has ``steps`` lines (one per finished training step)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if len(metrics(self.run_dir)) >= steps:
                return True
            time.sleep(0.05)
        return False

    def env_worker(self) -> int | None:
        """Pid of an env worker (a spawned child that is not the resource tracker)."""
        try:
            for child in psutil.Process(self.proc.pid).children():
                cmd = " ".join(child.cmdline())
                if "spawn_main" in cmd and "resource_tracker" not in cmd:
                    return child.pid
        except psutil.NoSuchProcess:
            return None
        return None

    def resource_tracker(self) -> int | None:
        """Pid of multiprocessing's resource tracker (it unlinks the driver's segments if the driver is killed)."""
        try:
            for child in psutil.Process(self.proc.pid).children():
                if "resource_tracker" in " ".join(child.cmdline()):
                    return child.pid
        except psutil.NoSuchProcess:
            return None
        return None

    def finish(self, timeout: float = 240.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    # ------------------------------------------------------------------------------------------ after exit
    def text(self) -> str:
        time.sleep(0.2)
        return "\n".join(line for _, line in self.lines)

    def leftovers(self, grace_s: float = 5.0) -> list[int]:
        """Descendants still running ``grace_s`` after the driver exited (zombies do not count)."""
        deadline = time.monotonic() + grace_s
        while True:
            alive = []
            for pid in self.pids - {self.proc.pid}:
                try:
                    if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                        alive.append(pid)
                except psutil.NoSuchProcess:
                    continue
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.1)

    def shm_left(self, grace_s: float = 5.0) -> list[str]:
        deadline = time.monotonic() + grace_s
        while True:
            left = [name for name in self.segments if Path("/dev/shm", name).exists()]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)


def metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def checkpoints(run_dir: Path) -> list[int]:
    from rlvla_cli.rundir import checkpoint as ckpt

    return [step for step, _ in ckpt.list_checkpoints(run_dir)]


def complete(run_dir: Path) -> bool:
    """Every committed checkpoint passes its manifest check."""
    from rlvla_cli.rundir import checkpoint as ckpt

    try:
        for _, path in ckpt.list_checkpoints(run_dir):
            ckpt.verify(path)
    except Exception:  # noqa: BLE001 - any failure is the answer
        return False
    return True


def line_with(text: str, words: str) -> str:
    """The last output line containing ``words`` (the message a row reports), or an empty string."""
    found = [line.strip() for line in text.splitlines() if words in line]
    return found[-1] if found else ""


def error_paragraph(text: str) -> str:
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith("error:")]
    return lines[found[-1]] if found else ""


def common_checks(row: Row, train: Train, text: str) -> None:
    row.checks["no traceback"] = "Traceback" not in text
    row.checks["no process left"] = not train.leftovers()
    row.checks["no /dev/shm left"] = not train.shm_left()
    row.checks["checkpoints complete"] = complete(train.run_dir)
    row.passed = all(row.checks.values())


# ---------------------------------------------------------------------------------------------- rows
def env_worker_kill9(root: Path) -> Row:
    row = Row("env_worker_kill9", "kill -9 of the env worker after step 1",
              "restarted, run finishes (exit 0), train/worker_restarts = 1, detected < 3 s")
    train = Train(root / row.name, ["runner.max_epochs=4", "runner.save_interval=2"])
    train.wait_steps(1)
    pid = train.env_worker()
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    seen = train.wait_line(r"env worker 0 .* died \(killed by SIGKILL\)", after=killed - 0.1)
    row.exit_code = train.finish()
    row.exit_s = time.monotonic() - killed
    row.detect_s = None if seen is None else seen - killed
    text, rows = train.text(), metrics(train.run_dir)
    row.checks["exit 0"] = row.exit_code == 0
    row.checks["detected < 3 s"] = row.detect_s is not None and row.detect_s < 3.0
    row.checks["restarted"] = "restarted in" in text
    row.checks["all 4 steps"] = len(rows) == 4 and rows[-1].get("train/worker_restarts") == 1.0
    row.lost = "nothing (the rollout was collected again)" if row.checks["all 4 steps"] else "steps missing"
    row.notes = line_with(text, "is restarted before the next rollout") + " / " + line_with(text, "restarted in")
    common_checks(row, train, text)
    return row


def resource_tracker_kill9(root: Path) -> Row:
    row = Row("resource_tracker_kill9", "kill -9 of multiprocessing's resource tracker after step 1",
              "run finishes (exit 0); the driver still unlinks its segments")
    train = Train(root / row.name, ["runner.max_epochs=3", "runner.save_interval=-1"])
    train.wait_steps(1)
    pid = train.resource_tracker()
    if pid is None:
        row.notes = "not run: no resource tracker process found"
        return row
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    row.exit_code = train.finish()
    row.exit_s = time.monotonic() - killed
    text = train.text()
    row.checks["exit 0, all 3 steps"] = row.exit_code == 0 and len(metrics(train.run_dir)) == 3
    row.lost = "nothing"
    common_checks(row, train, text)
    return row


def env_worker_beyond_restarts(root: Path) -> Row:
    row = Row("env_worker_beyond_restarts", "kill -9 of the env worker, runner.max_worker_restarts=0",
              "exit 3, one paragraph, checkpoint of the last completed update")
    train = Train(root / row.name, ["runner.max_epochs=50", "runner.save_interval=-1", "runner.max_worker_restarts=0"])
    train.wait_steps(2)
    os.kill(train.env_worker(), signal.SIGKILL)
    killed = time.monotonic()
    seen = train.wait_line(r"died \(killed by SIGKILL\)", after=killed - 0.1)
    row.exit_code = train.finish()
    row.exit_s, row.detect_s = time.monotonic() - killed, None if seen is None else seen - killed
    text, done = train.text(), len(metrics(train.run_dir))
    message = error_paragraph(text)
    row.checks["exit 3"] = row.exit_code == 3
    row.checks["message names the worker, the signal and the fix"] = all(
        words in message for words in ("env worker 0", "killed by SIGKILL", "Fix:"))
    row.checks["last update saved"] = bool(checkpoints(train.run_dir)) and checkpoints(train.run_dir)[-1] == done
    row.checks["detected < 3 s"] = row.detect_s is not None and row.detect_s < 3.0
    row.lost = "0 updates" if row.checks["last update saved"] else f"updates after {checkpoints(train.run_dir)}"
    row.notes = message[:400]
    common_checks(row, train, text)
    return row


def _signal_row(root: Path, name: str, sig: signal.Signals, stage: str, expect_step_offset: int) -> Row:
    target = "the process group (as Ctrl-C)" if sig == signal.SIGINT else "the driver"
    row = Row(name, f"{sig.name} to {target} in the {stage} of step 3",
              "exit 130, checkpoint of the last completed update")
    train = Train(root / name, ["runner.max_epochs=50", "runner.save_interval=-1"],
                  env={"RLVLA_DRILL_PAUSE_S": f"{stage}@2:4"})
    paused = train.wait_line(rf"drill: paused in {stage} at step (\d+)")
    line = next((text for when, text in train.lines if when == paused), "")
    step = int(re.search(r"step (\d+)", line).group(1)) if paused else -1
    sent = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(train.proc.pid, sig)
    else:
        os.kill(train.proc.pid, sig)
    row.exit_code = train.finish()
    row.exit_s = time.monotonic() - sent
    text, saved = train.text(), checkpoints(train.run_dir)
    row.checks["exit 130"] = row.exit_code == 130
    row.checks["last update saved"] = bool(saved) and saved[-1] == step + expect_step_offset
    expected = step + expect_step_offset
    row.lost = "0 updates" if row.checks["last update saved"] else f"saved {saved}, expected {expected}"
    row.notes = line_with(text, "run interrupted")
    common_checks(row, train, text)
    return row


def sigterm_mid_rollout(root: Path) -> Row:
    return _signal_row(root, "sigterm_mid_rollout", signal.SIGTERM, "rollout", 0)


def sigint_mid_update(root: Path) -> Row:
    return _signal_row(root, "sigint_mid_update", signal.SIGINT, "update", 1)


def kill9_mid_save(root: Path) -> Row:
    row = Row("kill9_mid_save", "kill -9 of the driver while it writes the checkpoint of step 2",
              "step 1's checkpoint intact, staging ignored, resume from step 1")
    run_dir = root / row.name
    train = Train(run_dir, ["runner.max_epochs=50", "runner.save_interval=1"],
                  env={"RLVLA_DRILL_PAUSE_S": "checkpoint@2:10"})
    train.wait_line(r"drill: paused in checkpoint at step 2")
    os.kill(train.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    row.exit_code = train.finish()
    text = train.text()
    staging = [p.name for p in (run_dir / "checkpoints").iterdir() if ".tmp-" in p.name]
    row.checks["previous checkpoint intact"] = checkpoints(run_dir) == [1] and complete(run_dir)
    row.checks["half-written one not listed"] = bool(staging)
    row.checks["no traceback"] = "Traceback" not in text
    row.checks["no process left"] = not train.leftovers()
    row.exit_s = time.monotonic() - killed  # the env worker and the resource tracker follow the driver
    row.checks["no /dev/shm left"] = not train.shm_left()
    resumed = Train(run_dir, ["runner.max_epochs=3", "runner.save_interval=-1", "runner.resume_dir=auto"])
    code = resumed.finish()
    steps = [m["step"] for m in metrics(run_dir)]  # the resumed run appends its steps
    row.checks["resume exit 0 at step 3"] = code == 0 and checkpoints(run_dir)[-1] == 3
    row.checks["resumed from step 1"] = steps[-2:] == [2, 3] and steps.count(2) == 2  # step 2 trained again
    row.lost = "the update being saved (step 2): kill -9 leaves no time to finish it"
    row.notes = f"staging left: {staging}; steps logged {steps}"
    row.passed = all(row.checks.values())
    return row


def corrupt_checkpoint(root: Path) -> Row:
    row = Row("corrupt_checkpoint", "one flipped byte in the newest checkpoint's engine file, then resume",
              "auto: warning naming the file, resume from the previous one; explicit: exit 2 naming it")
    run_dir = root / row.name
    first = Train(run_dir, ["runner.max_epochs=2", "runner.save_interval=1"])
    first.finish()
    newest = run_dir / "checkpoints" / "global_step_2"
    target = next((newest / "engine").rglob("*.pt"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    auto = Train(run_dir, ["runner.max_epochs=3", "runner.save_interval=-1", "runner.resume_dir=auto"])
    code = auto.finish()
    text = auto.text()
    row.checks["auto: warning names the file"] = str(target) in text and "global_step_1 instead" in text
    row.checks["auto: exit 0, finished at 3"] = code == 0 and checkpoints(run_dir)[-1] == 3
    explicit = Train(run_dir, ["runner.max_epochs=3", f"runner.resume_dir={newest}"])
    row.exit_code = explicit.finish()
    message = error_paragraph(explicit.text())
    row.checks["explicit: exit 2 naming the file"] = row.exit_code == 2 and str(target) in message
    row.checks["no traceback"] = "Traceback" not in text + explicit.text()
    row.checks["no process left"] = not auto.leftovers() and not explicit.leftovers()
    row.checks["no /dev/shm left"] = not auto.shm_left() and not explicit.shm_left()
    row.lost = "one step (resumed from the previous checkpoint)"
    row.notes = line_with(text, "warning:")[:400] + " / " + message[:400]
    row.passed = all(row.checks.values())
    return row


def full_disk(root: Path) -> Row:
    row = Row("full_disk", "checkpoints on a 2 MiB tmpfs (a checkpoint is ~1.5 MiB, two do not fit)",
              "warning, training goes on to the end (exit 0), no half checkpoint")
    run_dir = root / row.name
    mount = run_dir / "checkpoints"
    mount.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        row.notes = f"not run: cannot mount a tmpfs ({mounted.stderr.decode().strip()})"
        return row
    try:
        train = Train(run_dir, ["runner.max_epochs=4", "runner.save_interval=1", "runner.keep_last_checkpoints=1"])
        row.exit_code = train.finish()
        text = train.text()
        row.checks["exit 0, all 4 steps"] = row.exit_code == 0 and len(metrics(run_dir)) == 4
        row.checks["warned"] = "was not written (" in text and "MiB free under" in text
        row.checks["no staging left"] = not [p for p in mount.iterdir() if ".tmp-" in p.name]
        row.checks["a checkpoint kept"] = bool(checkpoints(run_dir))
        kept = checkpoints(run_dir)
        row.lost = f"the saves that did not fit (newest checkpoint: step {kept[-1] if kept else None})"
        row.notes = line_with(text, "was not written")[:400]
        common_checks(row, train, text)
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
    return row


def nan_injection(root: Path) -> Row:
    row = Row("nan_injection", "NaN rewards from step 3 (drill hook), runner.max_consecutive_skipped=2",
              "updates skipped, exit 2 with the divergence message, checkpoint kept")
    train = Train(root / row.name, ["runner.max_epochs=50", "runner.save_interval=-1",
                                    "runner.max_consecutive_skipped=2"],
                  env={"RLVLA_DRILL_NAN_REWARDS_FROM_STEP": "2"})
    row.exit_code = train.finish()
    text, rows = train.text(), metrics(train.run_dir)
    message = error_paragraph(text)
    row.checks["exit 2"] = row.exit_code == 2
    row.checks["message says skipped"] = "skipped for a NaN/inf" in message
    row.checks["skips counted"] = bool(rows) and rows[-1].get("train/skipped_steps", 0) >= 2
    row.checks["checkpoint kept"] = bool(checkpoints(train.run_dir))
    row.lost = "0 updates (the NaN ones were skipped, weights unchanged)"
    row.notes = message[:300]
    common_checks(row, train, text)
    return row


ROWS = {f.__name__: f for f in (env_worker_kill9, env_worker_beyond_restarts, resource_tracker_kill9,
                                sigterm_mid_rollout, sigint_mid_update, kill9_mid_save, corrupt_checkpoint, full_disk,
                                nan_injection)}


def soak(root: Path, steps: int, every_s: float = 5.0) -> dict:
    """``steps`` quickstart steps; RSS of the driver and its children and /dev/shm sampled every ``every_s``."""
    train = Train(root / "soak", [f"runner.max_epochs={steps}", "runner.save_interval=50"])
    samples = []
    while train.proc.poll() is None:
        try:
            family = [psutil.Process(train.proc.pid), *psutil.Process(train.proc.pid).children(recursive=True)]
            rss = sum(p.memory_info().rss for p in family) / 2**20
            mapped = set()
            for proc in family:  # this run's segments only (other runs on the machine have their own)
                mapped |= set(SHM.findall(Path(f"/proc/{proc.pid}/maps").read_text()))
        except (psutil.NoSuchProcess, OSError):
            break
        shm = sum(Path("/dev/shm", name).stat().st_size for name in mapped if Path("/dev/shm", name).exists()) / 2**20
        samples.append({"t": round(time.monotonic() - train.started, 1), "steps": len(metrics(train.run_dir)),
                        "rss_mib": round(rss, 1), "shm_mib": round(shm, 3), "shm_segments": len(mapped)})
        time.sleep(every_s)
    code = train.finish()
    warm = [s for s in samples if s["steps"] >= min(10, steps // 10)]
    first, last = (warm[0], warm[-1]) if warm else (None, None)
    return {"steps": steps, "exit_code": code, "samples": samples,
            "rss_growth_mib": None if not first else round(last["rss_mib"] - first["rss_mib"], 1),
            "shm_growth_mib": None if not first else round(last["shm_mib"] - first["shm_mib"], 2),
            "no_process_left": not train.leftovers(), "no_shm_left": not train.shm_left()}


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def compare_eval(root: Path, steps: int, kill_at: int) -> dict:
    """The quickstart (unshrunk) for ``steps`` steps twice: undisturbed, and with its env worker killed after step
    ``kill_at``; the final ``eval/success_once`` of each (32 fixed eval episodes: ~0.07 standard error at 0.8)."""
    out = {"steps": steps, "kill_at": kill_at}
    for name in ("undisturbed", "disturbed"):
        train = Train(root / f"eval_{name}", [f"runner.max_epochs={steps}", f"runner.val_check_interval={steps}",
                                              "runner.save_interval=-1"], fast=False)
        if name == "disturbed":
            train.wait_steps(kill_at, timeout=3600)
            os.kill(train.env_worker(), signal.SIGKILL)
        code = train.finish(timeout=7200)
        rows = metrics(train.run_dir)
        final = [r["eval/success_once"] for r in rows if "eval/success_once" in r]
        restarts = [r["train/worker_restarts"] for r in rows if "train/worker_restarts" in r]  # eval rows lack it
        out[name] = {"exit_code": code, "eval_success_once": final[-1] if final else None,
                     "worker_restarts": restarts[-1] if restarts else None,
                     "no_process_left": not train.leftovers(), "no_shm_left": not train.shm_left()}
    return out


def table(rows: list[Row]) -> str:
    lines = ["| fault | expected | result | exit | detect s | exit s | lost |", "|" + " --- |" * 7]
    for row in rows:
        failed = [name for name, ok in row.checks.items() if not ok]
        result = "pass" if row.passed else ("skipped: " + row.notes if not row.checks else "FAIL: " + ", ".join(failed))
        lines.append(f"| {row.name}: {row.fault} | {row.expected} | {result} | {row.exit_code} | "
                     f"{_seconds(row.detect_s)} | {_seconds(row.exit_s)} | {row.lost} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows of {', '.join(ROWS)}")
    parser.add_argument("--json", type=Path, default=Path("fault_drill.json"), help="where to write the results")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--soak", type=int, default=0, help="run a soak of this many quickstart steps instead")
    parser.add_argument("--compare-eval", type=int, default=0, metavar="STEPS",
                        help="instead: the quickstart for STEPS steps undisturbed and with its env worker killed at "
                             "a third of them; compare the final evaluations")
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="rlvla_drill_"))
    root.mkdir(parents=True, exist_ok=True)
    if args.compare_eval:
        result = compare_eval(root, args.compare_eval, max(1, args.compare_eval // 3))
        args.json.write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return 0 if all(result[k]["exit_code"] == 0 for k in ("undisturbed", "disturbed")) else 1
    if args.soak:
        result = soak(root, args.soak)
        args.json.write_text(json.dumps(result, indent=2))
        print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
        return 0 if result["exit_code"] == 0 and result["no_process_left"] and result["no_shm_left"] else 1
    names = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    rows = []
    for name in names:
        started = time.monotonic()
        row = ROWS[name](root)
        rows.append(row)
        print(f"{name}: {'pass' if row.passed else 'FAIL'} ({time.monotonic() - started:.0f} s) {row.checks}",
              flush=True)
    print(table(rows))
    args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    ran = [row for row in rows if row.checks]
    return 0 if all(row.passed for row in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
