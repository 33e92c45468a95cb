"""Shared-memory tensor channels: layouts, image-batch round trips across processes, text, cleanup."""

from __future__ import annotations

import multiprocessing as mp

import torch

from rlvla_cli.envs.base import ObsSpec
from rlvla_cli.envs.workers.channels import (
    ShmTensorBlock,
    cat_obs,
    decode_text,
    encode_text,
    list_segments,
    read_obs,
    step_layout,
    write_obs,
)

SPEC = ObsSpec(image_shape=(32, 24, 3), state_dim=5, has_wrist=True, max_instruction_chars=16)


def _child_doubles_images(name: str, layout) -> None:
    block = ShmTensorBlock(layout, name=name, create=False)
    obs = read_obs(block, "obs")
    obs["main_images"] = obs["main_images"] * 2
    obs["task_descriptions"] = [t.upper() for t in obs["task_descriptions"]]
    write_obs(block, "final", obs)
    block.close()


def make_obs(batch: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "main_images": torch.randint(0, 128, (batch, 32, 24, 3), dtype=torch.uint8, generator=generator),
        "wrist_images": torch.randint(0, 255, (batch, 32, 24, 3), dtype=torch.uint8, generator=generator),
        "states": torch.randn(batch, 5, generator=generator),
        "task_descriptions": [f"task {i}" for i in range(batch)],
    }


def test_image_batch_round_trip_through_another_process():
    before = list_segments()
    layout = step_layout(SPEC, batch=3, max_chunk=4, action_dim=7)
    block = ShmTensorBlock(layout)
    assert block.name in list_segments()
    obs = make_obs(3)
    write_obs(block, "obs", obs)
    child = mp.get_context("spawn").Process(target=_child_doubles_images, args=(block.name, layout))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    back = read_obs(block, "final")
    assert torch.equal(back["main_images"], obs["main_images"] * 2)
    assert torch.equal(back["wrist_images"], obs["wrist_images"]) and torch.equal(back["states"], obs["states"])
    assert back["task_descriptions"] == ["TASK 0", "TASK 1", "TASK 2"]
    copied = read_obs(block, "obs")
    block.close()
    assert list_segments() == before  # unlinked
    assert copied["main_images"].sum() > 0  # copies stay valid after the segment is gone


def test_layout_shapes_and_dtypes():
    layout = step_layout(SPEC, batch=2, max_chunk=3, action_dim=7)
    assert layout["actions"] == ((2, 3, 7), torch.float32)
    assert layout["obs.main_images"] == ((2, 32, 24, 3), torch.uint8)
    assert layout["terminations"] == ((2, 3), torch.bool) and layout["episode"] == ((5, 2), torch.float32)
    assert "final.wrist_images" in layout


def test_text_is_utf8_and_truncated_to_the_buffer():
    data, lengths = torch.zeros(2, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32)
    encode_text(["grüne Box", "a much longer instruction"], data, lengths)
    assert decode_text(data, lengths) == ["grüne B", "a much l"]


def test_cat_obs_concatenates_batches():
    joined = cat_obs([make_obs(2), make_obs(3)])
    assert joined["main_images"].shape[0] == 5 and len(joined["task_descriptions"]) == 5


def test_changed_instructions_are_seen_by_the_reader():
    block = ShmTensorBlock(step_layout(SPEC, batch=3, max_chunk=1, action_dim=7))
    try:
        obs = make_obs(3)
        write_obs(block, "obs", obs)
        assert read_obs(block, "obs")["task_descriptions"] == ["task 0", "task 1", "task 2"]
        obs["task_descriptions"] = ["task 0", "new one", "task 2"]
        write_obs(block, "obs", obs)
        assert block["obs.text_version"].tolist() == [1, 2, 1]  # only the changed row was re-encoded
        assert read_obs(block, "obs")["task_descriptions"] == ["task 0", "new one", "task 2"]
    finally:
        block.close()


def test_final_rows_only_are_written_and_read():
    block = ShmTensorBlock(step_layout(SPEC, batch=4, max_chunk=1, action_dim=7))
    try:
        obs, rows = make_obs(4), torch.tensor([1, 3])
        write_obs(block, "final", obs, rows=rows)
        assert block["final.main_images"][[0, 2]].sum() == 0  # rows 0 and 2 untouched (zero since creation)
        back = read_obs(block, "final", rows=rows)
        for key in ("main_images", "wrist_images", "states"):
            assert torch.equal(back[key][rows], obs[key][rows]) and back[key][[0, 2]].abs().sum() == 0
        assert [back["task_descriptions"][r] for r in (1, 3)] == ["task 1", "task 3"]
    finally:
        block.close()
