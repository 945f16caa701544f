"""Shared pytest fixtures: every test gets its own cache directory, never the user's."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest


@pytest.fixture(autouse=True)
def _isolated_clrs_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLRS_TASKS_CACHE", str(tmp_path / "clrs_cache"))
