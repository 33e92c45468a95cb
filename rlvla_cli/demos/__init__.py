"""Demonstrations for SFT: ManiSkill's motion planner, replayed into the env adapter's format."""
