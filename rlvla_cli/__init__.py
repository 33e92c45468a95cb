"""rlvla: online RL fine-tuning (PPO / GRPO) of Vision-Language-Action policies in simulation."""

__version__ = "0.1.0"
