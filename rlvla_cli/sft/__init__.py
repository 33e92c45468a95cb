"""Behaviour cloning (`rlvla sft`) on `rlvla collect-demos` datasets, on the same DeepSpeed trainer as RL."""
