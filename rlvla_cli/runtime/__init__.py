"""The training runtime: processes, trainer, rollout, weight sync, offload, the loop, checkpoints, faults.

Modules (import what you need; nothing heavy is imported here):

- ``runner``: ``Runner(cfg, placement, offload).run() -> RunResult``: the loop sync -> rollouts -> advantages
  -> update -> log -> eval -> checkpoint.
- ``trainer`` / ``trainer_group``: the DeepSpeed engine of one actor rank; all ranks behind one handle.
- ``rollout_worker``: inference over the env worker pool's pipeline stages, building the ``RolloutBatch``.
- ``weight_sync``: trainer -> rollout copy (shared storage on one device, bucketed copies / broadcasts).
- ``offload``: trainer / rollout state to the CPU and back for collocated placements.
- ``launcher``: process groups (with collective timeouts), spawning trainer ranks.
- ``distributed``: multi-node runs: one torchrun-started driver per node (env workers, rollout copies, a trainer
  rank), batches and weights over torch.distributed (docs/multinode.md).
- (checkpoint directories: ``rlvla_cli/rundir/checkpoint.py``, shared with evaluation and inspect-checkpoint).
- ``signals``: SIGINT / SIGTERM -> checkpoint and stop; workers never orphan.
- ``evaluator`` / ``perf``: in-training evaluation and throughput metrics.
- (the env worker pool and its shared-memory channels live in ``envs/workers/``, below this package).
"""
