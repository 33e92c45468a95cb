"""Put the nodes' rollout batches back in the single-node env order (pure function).

A single pool of ``W`` workers orders envs stage-major (global env ``s * W * n + w * n + i``, pool.py) and the
runner concatenates rollout epochs along B, so B is ordered (epoch, stage, worker, env). Node k runs workers
``W_k`` (a contiguous range) and yields its envs in (epoch, stage, its worker, env) order. Splitting each node's
batch into its ``epochs * stages`` blocks and interleaving the nodes block by block restores the single order,
so GAE, GRPO groups and advantage normalisation see exactly the batch a single node would have built.
"""

from __future__ import annotations

from rlvla_cli.algorithms.batch import RolloutBatch


def merge_node_batches(batches: list[RolloutBatch], blocks: int) -> RolloutBatch:
    """Node batches (node order, each ``[T, B_k, ...]`` with ``B_k`` divisible by ``blocks`` = rollout epochs x
    pipeline stages) -> one ``[T, sum B_k, ...]`` batch in single-node env order."""
    if len(batches) == 1:
        return batches[0]
    pieces = [batch.split(blocks) for batch in batches]
    return RolloutBatch.cat([node_pieces[j] for j in range(blocks) for node_pieces in pieces])
