"""Checkpoints: written atomically, read back only for their own config, set aside when unusable, and a
restored state continues the RNG streams where they stopped; a full or unwritable directory fails with
its path named and the last good checkpoint intact."""

from __future__ import annotations

import os

import pytest
import torch

from benchmark.config import RunConfig
from benchmark.tracking.outages import DiskError
from benchmark.training.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    load_checkpoint,
    restore,
    save_checkpoint,
    training_state,
)

CFG = RunConfig(task="toy-transients")


def _parts(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return (model, optimizer, torch.amp.GradScaler("cuda", enabled=False), torch.Generator().manual_seed(seed),
            torch.Generator().manual_seed(seed + 1))


def test_the_path_is_named_by_the_config_hash(tmp_path):
    assert checkpoint_path(tmp_path, CFG) == tmp_path / CFG.config_hash / "last.pt"


def test_save_then_restore_continues_every_stream(tmp_path):
    model, optimizer, scaler, loader_gen, augment_gen = _parts(seed=0)
    best = {"epoch": 0, "val": 0.5, "test": 0.25, "per_class": [0.5], "support": [2], "examples": {}}
    path = checkpoint_path(tmp_path, CFG)
    save_checkpoint(path, training_state(CFG, 1, model, optimizer, scaler, loader_gen, augment_gen,
                                         [{"epoch": 0, "val_metric_epoch": 0.5}], best))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind
    expected = (torch.rand(3), torch.rand(3, generator=loader_gen), torch.rand(3, generator=augment_gen))

    state = load_checkpoint(path, CFG)
    assert state is not None and state["format"] == CHECKPOINT_FORMAT and state["config_hash"] == CFG.config_hash
    other = _parts(seed=5)
    epoch, history, restored_best = restore(state, *other)
    assert (epoch, history, restored_best) == (1, [{"epoch": 0, "val_metric_epoch": 0.5}], best)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other[0].state_dict().values(),
                                                    strict=True))
    assert other[1].state_dict()["state"][0]["step"] == 1
    again = (torch.rand(3), torch.rand(3, generator=other[3]), torch.rand(3, generator=other[4]))
    assert all(torch.equal(a, b) for a, b in zip(expected, again, strict=True))


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path):
    path = checkpoint_path(tmp_path / "ckpt", CFG)
    path.parent.mkdir(parents=True)
    torch.save({"format": 1, "config_hash": CFG.replace(seed=7).config_hash, "epoch": 1}, path)
    assert load_checkpoint(path, CFG) is None and path.with_name("last.pt.corrupt").exists()
    torch.save({"format": 1, "config_hash": CFG.config_hash, "epoch": 1}, path)  # keys missing
    assert load_checkpoint(path, CFG) is None


@pytest.mark.parametrize("content", [b"", b"\x80\x02 truncated garbage"])
def test_an_unreadable_file_is_set_aside(tmp_path, content):
    path = checkpoint_path(tmp_path, CFG)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert load_checkpoint(path, CFG) is None
    assert not path.exists() and path.with_name("last.pt.corrupt").read_bytes() == content


def test_no_file_is_no_checkpoint(tmp_path):
    assert load_checkpoint(checkpoint_path(tmp_path, CFG), CFG) is None
    assert not (tmp_path / CFG.config_hash).exists()


def _save(path, epoch: int) -> None:
    model, optimizer, scaler, loader_gen, augment_gen = _parts(seed=0)
    best = {"epoch": 0, "val": 0.5, "test": 0.25, "per_class": [0.5], "support": [2], "examples": {}}
    save_checkpoint(path, training_state(CFG, epoch, model, optimizer, scaler, loader_gen, augment_gen, [], best))


def test_a_full_disk_names_the_path_and_keeps_the_last_good_checkpoint(tmp_path):
    path = checkpoint_path(tmp_path, CFG)
    _save(path, epoch=1)
    # the next write lands on /dev/full: the kernel answers ENOSPC, as a full disk does
    (path.parent / f"last.pt.tmp{os.getpid()}").symlink_to("/dev/full")
    with pytest.raises(DiskError, match="No space left on device") as err:
        _save(path, epoch=2)
    assert str(path) in str(err.value) and "ENOSPC" in str(err.value)
    assert load_checkpoint(path, CFG)["epoch"] == 1  # the last good checkpoint, intact
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # the failed temporary file is gone


def test_an_unwritable_checkpoint_dir_names_the_path(tmp_path):
    blocker = tmp_path / "ckpt"
    blocker.write_text("a file where the checkpoint directory should be")
    path = checkpoint_path(blocker, CFG)
    with pytest.raises(DiskError, match="cannot write the checkpoint") as err:
        _save(path, epoch=1)
    assert str(path) in str(err.value) and "--checkpoint-dir" in str(err.value)
    assert blocker.read_text().startswith("a file")
