"""The env-pool layer: env worker processes behind shared-memory channels, and the in-process pool.

- ``channels``: shared-memory tensor blocks for observations and step results (no pickling on the hot path).
- ``pool``: ``EnvWorkerPool`` (spawned processes, pipeline stages), ``InlineEnvPool`` and ``make_env_pool``.

It sits below ``runtime/`` (the training loop) and ``evaluation/`` (the episode runner), which both use it.
"""
