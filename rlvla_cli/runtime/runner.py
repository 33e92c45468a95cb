"""The training loop: sync -> rollouts -> advantages -> update -> log -> eval -> checkpoint.

Components come from the resolved placement: the trainer ranks (``TrainerGroup``, this process is rank 0),
the env workers (``EnvWorkerPool``), the rollout copy of the policy (inference in this process on the
rollout device, fed by the pool's pipeline stages; with several rollout devices one copy per device and each
batch split over them, see ``replicas.py``) and the weight sync between trainer and rollout copies.
SIGINT / SIGTERM stop the loop at the next chunk step with a checkpoint of the last finished step.

Faults (issue 19, docs/reliability.md): a dead env worker is restarted and the interrupted rollout epoch collected
again (``runner.max_worker_restarts`` within ``runner.worker_restart_window`` steps); any other fault (a worker
beyond its restarts, a trainer rank dying, out of memory, a CUDA error) saves the last completed update when the
trainer state is whole (not mid-update) and newer than the last checkpoint, stops every child and raises
``RuntimeFault`` (one paragraph, exit code 3). A save that fails (a full disk) is reported and training goes on.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.errors import CheckpointError, RuntimeFault, WorkerDied, WorkerError
from rlvla_cli.models.base import PRECISION_DTYPES
from rlvla_cli.rundir import checkpoint as ckpt
from rlvla_cli.runtime import faults
from rlvla_cli.runtime.offload import EngineOffloader, ModuleOffloader
from rlvla_cli.runtime.perf import Stopwatch, actor_mfu
from rlvla_cli.runtime.replicas import OffloadGroup, ReplicatedPolicy, SyncGroup
from rlvla_cli.runtime.rollout_worker import RolloutWorker, episode_metrics
from rlvla_cli.runtime.signals import StopRequest
from rlvla_cli.runtime.threads import available_cpus, rollout_threads, torch_threads
from rlvla_cli.runtime.trainer_group import PolicyFactory, TrainerGroup, default_policy_factory
from rlvla_cli.runtime.weight_sync import WeightSync

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig


@dataclass
class RunResult:
    """How a run ended: ``status`` is ``finished``, ``interrupted`` (signal) or ``diverged`` (too many skipped
    updates in a row); ``last_metrics`` of the final step, the last checkpoint written."""

    status: str
    global_step: int
    last_metrics: dict[str, float]
    checkpoint: Path | None
    run_dir: Path


class Runner:
    """Builds the components for ``placement`` and runs ``cfg``'s loop (see the module docstring).

    offload: (actor, rollout) offload decisions from the planner; factory: builds a policy for (cfg, device);
    console: show the rich progress bar / tables.
    """

    def __init__(self, cfg: RootConfig, placement: Any, offload: tuple[bool, bool] = (False, False),
                 factory: PolicyFactory = default_policy_factory, console: bool = True):
        self.cfg, self.placement, self.offload, self.factory, self.console = cfg, placement, offload, factory, console
        self.run_dir = cfg.run_dir
        self.global_step = 0
        self.env_steps = 0
        self.rng_snapshot: dict | None = None
        self.last_checkpoint: Path | None = None
        self.stop = StopRequest()
        self.group = self.pool = self.tracker = self.evaluator = None
        self.rollout_threads: int | None = None  # CPU rollout next to env workers: see runtime/threads.py
        self.stage = "setup"  # what the loop is doing (fault messages; no fault checkpoint mid-update)
        self.restarts = faults.RestartBudget(cfg.runner.max_worker_restarts, cfg.runner.worker_restart_window)

    # ------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build trainer ranks, rollout copy, env workers and tracker; load a checkpoint when resuming."""
        from rlvla_cli.config.loader import dump_config
        from rlvla_cli.envs.workers.pool import EnvWorkerPool
        from rlvla_cli.tracking import build_tracker

        cfg, comps = self.cfg, self.placement.components
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(dump_config(cfg))
        actor_devices = [p.device for p in comps["actor"].processes]
        total_opt = cfg.total_optimizer_steps
        self.group = TrainerGroup(cfg, actor_devices, total_opt, self.factory)
        rollout_devices = list(dict.fromkeys(p.device for p in comps["rollout"].processes))  # distinct, ordered
        rollout_device = rollout_devices[0]
        torch.manual_seed(cfg.runner.seed)  # the rollout copies are overwritten by the first sync anyway
        copies = [self._rollout_copy(device) for device in rollout_devices]
        self.actor_offloader = EngineOffloader(self.group.trainer.engine, actor_devices[0], self.offload[0])
        if len(copies) == 1:
            self.sync = WeightSync(self.group.module, copies[0])
            self.rollout_policy = copies[0]
            self.rollout_offloader = ModuleOffloader(copies[0], rollout_device, self.offload[1])
        else:  # several rollout GPUs: one copy each, every batch split over them (runtime/replicas.py)
            self.sync = SyncGroup(self.group.module, copies)
            self.rollout_policy = ReplicatedPolicy(copies)
            self.rollout_offloader = OffloadGroup(copies, rollout_devices, self.offload[1])
        self.pool = EnvWorkerPool(cfg.env.train, num_workers=self.placement.env_workers,
                                  stages=cfg.rollout.pipeline_stage_num, seed=cfg.env.train.seed,
                                  max_chunk=cfg.actor.model.num_action_chunks, on_death=self._worker_died)
        cpu_rollout = torch.device(rollout_device).type == "cpu" and self.placement.env_workers > 0
        self.rollout_threads = rollout_threads(available_cpus(), self.placement.env_workers) if cpu_rollout else None
        self.rollout = RolloutWorker(self.rollout_policy, rollout_device, self.pool, cfg.chunk_steps_per_rollout,
                                     cfg.rollout.sampling, auto_reset=cfg.env.train.auto_reset,
                                     needs_values=cfg.algorithm.needs_rollout_values, should_stop=self.stop)
        self._maybe_resume()
        self.tracker = build_tracker(cfg.runner.logger, self.run_dir, cfg.model_dump(mode="json"),
                                     cfg.total_steps, self.global_step, console=self.console)

    def _maybe_resume(self) -> None:
        """Load the newest loadable checkpoint ``runner.resume_dir`` names; a corrupted one is reported and the
        next older one tried (a named checkpoint directory has no fallback: its error stops the run)."""
        candidates = ckpt.resume_candidates(self.cfg.runner.resume_dir, self.run_dir)
        for index, checkpoint in enumerate(candidates):
            try:
                ckpt.verify(checkpoint)
                state = self._load(checkpoint)
            except CheckpointError as err:
                if index + 1 == len(candidates):
                    raise
                self.note(f"warning: {err} Resuming from the older {candidates[index + 1]} instead.")
                continue
            self.global_step, self.env_steps = state["global_step"], state["env_steps"]
            self.sync.version = state.get("weight_version", 0)
            self.last_checkpoint = checkpoint
            return

    def _load(self, checkpoint: Path) -> dict[str, Any]:
        """Engine, RNG and counters of ``checkpoint``; an unreadable file becomes a CheckpointError naming it."""
        try:
            self.group.load(checkpoint)
            return ckpt.read_trainer_state(checkpoint)
        except (OSError, ValueError, KeyError, RuntimeError, EOFError) as err:
            raise CheckpointError(f"checkpoint {checkpoint} cannot be loaded ({type(err).__name__}: "
                                  f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})",
                                  key="runner.resume_dir", fix="resume from an older checkpoint or start afresh"
                                  ) from err

    def note(self, message: str) -> None:
        """A line for the user (restarts, fallbacks, failed saves): above the progress bar, else on stderr."""
        if self.tracker is not None and self.console:
            from rich.markup import escape

            self.tracker.print(escape(message))  # torch's messages hold `[...]`, which rich would eat as markup
        else:
            print(message, file=sys.stderr, flush=True)

    def _worker_died(self, worker: int, pid: int | None, reason: str) -> None:
        """The pool's watchdog saw an env worker die (called from its thread)."""
        self.note(f"env worker {worker} (pid {pid}) died ({reason}) during the {self.stage}; it is restarted "
                  "before the next rollout")

    def _rollout_copy(self, device: str) -> torch.nn.Module:
        """A rollout copy of the policy on ``device`` in ``rollout.precision`` (GPU) for the weight sync to fill."""
        policy = self.factory(self.cfg, device)
        if torch.device(device).type == "cuda" and self.cfg.rollout.precision != "fp32":
            policy.to(dtype=PRECISION_DTYPES[self.cfg.rollout.precision])
        return policy

    # ------------------------------------------------------------------------------------------ loop
    def run(self) -> RunResult:
        status = "finished"
        last: dict[str, float] = {}
        with self.stop:
            try:
                self.setup()
                if self.cfg.runner.only_eval:  # RLinf's switch: evaluate the loaded (or resumed) weights, no update
                    last = self.evaluate()
                    self.tracker.log(last, self.global_step)
                    self.tracker.print(f"eval success_once {last.get('eval/success_once', 0.0):.3f}")
                    return RunResult(status, self.global_step, last, self.last_checkpoint, self.run_dir)
                total = self.cfg.total_steps
                while self.global_step < total and not self.stop.requested:
                    metrics = self.train_step()
                    if metrics is None:  # stopped by a signal during the rollout
                        break
                    last = metrics
                    if self.group.trainer.consecutive_skipped >= self.cfg.runner.max_consecutive_skipped:
                        status = "diverged"
                        break
                    self._periodic(last, total)
                if self.stop.requested:
                    status = "interrupted"
                if self.global_step > 0 and (self.last_checkpoint is None
                                             or self.last_checkpoint.name != f"global_step_{self.global_step}"):
                    self.save_checkpoint()
            except WorkerError as err:
                if not self.stop.requested:
                    self._fail(err)
                status = "interrupted"  # workers stopped by the same Ctrl-C; state of the last step is kept
                self.save_checkpoint()
            except (RuntimeFault, MemoryError, RuntimeError) as err:
                self._fail(err)
            finally:
                self.close()
        return RunResult(status, self.global_step, last, self.last_checkpoint, self.run_dir)

    def _fail(self, err: BaseException) -> None:
        """End the run on a fault: checkpoint the last completed update when that is safe, then raise
        ``RuntimeFault`` saying what died, why, what was kept and what to do. Not a fault (a bug): re-raise."""
        if isinstance(err, RuntimeFault):
            what, why, fix = err.what, err.why, err.fix
        else:
            described = faults.describe(err, self.stage)
            if described is None:
                raise err
            what, why, fix = described
        kept = self._fault_checkpoint()
        raise RuntimeFault(what, why=why, kept=kept, fix=fix) from err

    def _fault_checkpoint(self) -> str:
        """Save the last completed update if it is newer than the last checkpoint and the trainer state is whole
        (not stopped mid-update, every rank alive); returns the sentence saying what was kept."""
        step = self.global_step
        saved = self.last_checkpoint is not None and self.last_checkpoint.name == f"global_step_{step}"
        if step > 0 and not saved and self.group is not None and self.stage != "update":
            try:
                self.group.check_alive()
                self.save_checkpoint()
            except Exception as err:  # noqa: BLE001 - the fault message matters more; say the save failed
                return (f"Saving step {step} failed too ({type(err).__name__}: {err}); the last checkpoint is "
                        f"{self.last_checkpoint or 'none'}")
        if self.last_checkpoint is None:
            return "No checkpoint was written (no update had completed)"
        resume = f"resume with runner.resume_dir={self.last_checkpoint}"
        if self.last_checkpoint.name == f"global_step_{step}":
            return f"The last completed update (step {step}) is saved in {self.last_checkpoint}; {resume}"
        return (f"The update of step {step + 1} was in progress and is lost; the last checkpoint is "
                f"{self.last_checkpoint}; {resume}")

    def _periodic(self, metrics: dict[str, float], total: int) -> None:
        runner = self.cfg.runner
        step = self.global_step
        if runner.val_check_interval > 0 and (step % runner.val_check_interval == 0 or step == total):
            evals = self.evaluate()
            metrics.update(evals)
            self.tracker.log(evals, step)
            if evals:
                self.tracker.print(f"step {step}: eval success_once {evals.get('eval/success_once', 0.0):.3f}")
        if runner.save_interval > 0 and step % runner.save_interval == 0:
            self.save_checkpoint()

    def _collect(self) -> tuple[Any, dict[str, torch.Tensor], int] | None:
        """Every rollout epoch of this step, concatenated along B; None when a stop was requested meanwhile."""
        env_cfg = self.cfg.env.train
        results = []
        for epoch in range(env_cfg.rollout_epoch):
            seed = env_cfg.seed + self.global_step * env_cfg.rollout_epoch + epoch
            result = self._collect_epoch(seed)
            if result is None:
                return None
            results.append(result)
        episodes = {k: torch.cat([r.episodes[k] for r in results]) for k in results[0].episodes}
        return RolloutBatch.cat([r.batch for r in results]), episodes, sum(r.env_steps for r in results)

    def _collect_epoch(self, seed: int) -> Any:
        """One rollout epoch; when an env worker died the epoch's partial rollout is dropped, the worker restarted
        (same env group, fresh seed stream) and the epoch collected again from its reset with the same ``seed``."""
        died: WorkerDied | None = None
        while True:
            try:
                if died is not None:  # a worker that dies again while starting counts as another restart
                    self._restart_env_workers(died)
                    died = None
                with torch_threads(self.rollout_threads):  # no oversubscription next to busy env workers
                    return self.rollout.collect(seed)
            except WorkerDied as err:
                if self.stop.requested:
                    raise
                died = err

    def _restart_env_workers(self, err: WorkerDied) -> None:
        limit, window = self.cfg.runner.max_worker_restarts, self.cfg.runner.worker_restart_window
        if not self.restarts.allow(self.global_step):
            raise RuntimeFault(
                f"env worker {err.worker} (pid {err.pid}) {err.why} during the {self.stage}, after "
                f"{len(self.restarts.steps) - 1} restart(s) within the last {window} steps "
                f"(runner.max_worker_restarts={limit})",
                fix="check the simulator's log above and the machine's memory (`dmesg` shows the OOM killer); "
                    "raise runner.max_worker_restarts to tolerate more") from err
        started = time.monotonic()
        restarted = self.pool.restart_dead()
        self.note(f"env worker {', '.join(map(str, restarted))} restarted in {time.monotonic() - started:.1f} s "
                  f"(worker {err.worker} {err.why}; restart {self.restarts.total}, at most {limit} within {window} "
                  f"steps); the rollout of step {self.global_step + 1} is collected again")

    def train_step(self) -> dict[str, float] | None:
        """One step: sync -> rollouts -> advantages -> update -> log; returns its metrics (``time/*`` included),
        or None when a signal arrived during the rollout (the last finished step is kept, nothing is trained)."""
        from rlvla_cli.algorithms import compute_advantages, rollout_metrics

        timings: dict[str, float] = {}
        with Stopwatch() as step_watch:
            self.group.check_alive()
            self.rollout_offloader.reload()
            self.sync.sync()
            timings["time/sync_weights"] = self.sync.last_seconds
            self.actor_offloader.offload()
            self.stage = "rollout"
            faults.drill_pause("rollout", self.global_step)
            with Stopwatch() as watch:
                collected = self._collect()
            timings["time/generate_rollouts"] = watch.seconds
            if collected is None or self.stop.requested:
                return None
            batch, episodes, env_steps = collected
            faults.inject_nan_rewards(batch.rewards, self.global_step)  # drill hook; off unless its env var is set
            self.actor_offloader.reload()
            self.rollout_offloader.offload()
            with Stopwatch() as watch:
                compute_advantages(batch, self.cfg.algorithm)
            timings["time/cal_adv_and_returns"] = watch.seconds
            self.stage = "update"
            faults.drill_pause("update", self.global_step)
            with Stopwatch() as watch:
                train_metrics = self.group.train(batch, self.global_step)
            timings["time/actor_training"] = watch.seconds
            self.global_step += 1
            self.env_steps += env_steps
            self.rng_snapshot = ckpt.capture_rng_state()
            self.stage = "step end"
        timings["time/step"] = step_watch.seconds
        metrics = {**episode_metrics(episodes), **rollout_metrics(batch), **train_metrics, **timings}
        metrics["perf/env_steps_per_s"] = env_steps / max(timings["time/generate_rollouts"], 1e-9)
        mfu = actor_mfu(self.group.module, batch.num_steps * batch.num_envs * self.cfg.algorithm.update_epoch,
                        timings["time/actor_training"], self.placement.components["actor"].processes[0].device,
                        self.group.world)
        if mfu is not None:
            metrics["perf/actor_mfu"] = mfu
        metrics["perf/total_env_steps"] = float(self.env_steps)
        metrics["train/weight_version"] = float(self.sync.version)
        metrics["train/worker_restarts"] = float(self.restarts.total)
        self.tracker.log(metrics, self.global_step)
        return metrics

    # ------------------------------------------------------------------------------------------ eval / ckpt
    def evaluate(self) -> dict[str, float]:
        """Greedy evaluation of the current weights on ``env.eval``."""
        from rlvla_cli.runtime.evaluator import InLoopEvaluator

        self.stage = "evaluation"
        if self.evaluator is None:
            self.evaluator = InLoopEvaluator(self.cfg.env.eval, self.cfg.rollout.sampling,
                                             max_chunk=self.cfg.actor.model.num_action_chunks)
        self.rollout_offloader.reload()
        self.sync.sync()
        with torch_threads(self.rollout_threads):  # the eval env worker needs a core too
            return self.evaluator.evaluate(self.rollout_policy)

    def save_checkpoint(self) -> Path | None:
        """Atomic checkpoint of the last finished step (every rank's engine + RNG, HF weights, counters).

        A save that fails for the disk (full, read-only, quota) removes its staging directory, says so and returns
        None: the previous checkpoint stays the newest and the training state in memory is untouched."""
        previous, self.stage = self.stage, "checkpoint"
        staging = None
        try:
            staging = ckpt.staging_dir(self.run_dir, self.global_step)
            self._write_checkpoint(staging)
            faults.drill_pause("checkpoint", self.global_step)  # drill hook: files written, not yet committed
            self.last_checkpoint = ckpt.commit(staging, self.global_step)
        except (OSError, RuntimeError) as err:
            if not faults.is_write_failure(err):
                raise
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            why = f"{err.strerror}: {err.filename}" if isinstance(err, OSError) and err.strerror else str(err)
            root = ckpt.checkpoints_root(self.run_dir)
            if root.is_dir():
                why += f"; {shutil.disk_usage(root).free / 2**20:.1f} MiB free under {root}"
            self.note(f"warning: the checkpoint of step {self.global_step} was not written ({why}); training goes "
                      f"on and the newest checkpoint is still {self.last_checkpoint or 'none'}. Free space under "
                      f"{self.run_dir} (or set runner.output_dir)")
            return None
        finally:
            self.stage = previous
        ckpt.prune(self.run_dir, keep_last=self.cfg.runner.keep_last_checkpoints)
        if self.tracker is not None:
            self.tracker.print(f"checkpoint: {self.last_checkpoint}")
        return self.last_checkpoint

    def _write_checkpoint(self, staging: Path) -> None:
        from rlvla_cli.config.loader import dump_config
        from rlvla_cli.runtime.weight_sync import gathered

        self.group.save(staging, rank0_rng=self.rng_snapshot)
        with gathered(self.group.module):
            ckpt.save_policy_weights(self.group.module, staging / "policy")
        ckpt.write_json(staging / ckpt.TRAINER_STATE, {
            "global_step": self.global_step, "env_steps": self.env_steps, "weight_version": self.sync.version,
            "optimizer_steps": self.group.trainer.optimizer_steps,
            "skipped_steps": self.group.trainer.skipped_steps,
        })
        (staging / "config.yaml").write_text(dump_config(self.cfg))

    def close(self) -> None:
        """Stop every child and release every shared-memory segment (idempotent)."""
        for closer in (self.pool, self.evaluator, self.group, self.tracker):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # noqa: BLE001 - keep closing the others
                    pass
        self.pool = self.evaluator = self.group = self.tracker = None
