"""`rlvla download-assets` argument handling and the --list table (downloads: tests/hub/test_download.py)."""

from __future__ import annotations

import pytest

from rlvla_cli.commands.download import run_download
from rlvla_cli.errors import UserError


def test_list_prints_the_catalogue(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    run_download(None, None, None, None, True, None)
    out = capsys.readouterr().out
    for text in ("openvla-oft-maniskill-lora", "RLinf/RLinf-Pi05-LIBERO-SFT", "lerobot/libero-assets", "lora_path"):
        assert text in out


def test_missing_name_is_a_user_error():
    with pytest.raises(UserError, match="needs a NAME"):
        run_download(None, None, None, None, False, None)


def test_bad_mirror_is_a_user_error():
    with pytest.raises(UserError, match="not an http"):
        run_download("libero-hub", None, None, "ftp://mirror", False, None)
