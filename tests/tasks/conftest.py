"""Every tasks test gets its own cache folder and no DIFFRES_DATA_DIR."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own DIFFRES_CACHE_DIR and no DIFFRES_DATA_DIR."""
    monkeypatch.setenv("DIFFRES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DIFFRES_DATA_DIR", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; these tests are small
    yield tmp_path / "cache"
    torch.set_num_threads(threads)
