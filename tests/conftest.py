"""Shared pytest fixtures: every test gets its own cache directory, never the user's.

Tests run torch single-threaded: the models here are tiny, and with more threads than free cores
(another job on the machine) OpenMP's spin-waiting slows small ops down by orders of magnitude.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Every test starts single-threaded, whatever an earlier one set (``dear compare`` sets
    the thread count of the process it runs in)."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_clrs_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLRS_TASKS_CACHE", str(tmp_path / "clrs_cache"))
