"""The env-pool layer: env worker processes behind shared-memory channels.

- ``channels``: shared-memory tensor blocks for observations and step results (no pickling on the hot path).
- ``messages``: the typed pipe protocol between the pool and a worker.
- ``worker``: the worker process (builds its env groups, serves reset / step).
- ``pool``: ``EnvPool`` (the interface rollout and evaluation drive) and ``EnvWorkerPool`` (its implementation).

It sits below ``runtime/`` (the training loop) and ``evaluation/`` (the episode runner), which both use it.
"""
