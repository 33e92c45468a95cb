"""A run directory on disk: checkpoint layout (atomic commit, listing, trainer state, RNG, policy weights).

Used by the training loop (``runtime/``), by ``rlvla eval`` (``evaluation/``, to find a run's latest checkpoint)
and by ``inspect-checkpoint``; it imports nothing of theirs, so none of them import each other for it.
"""
