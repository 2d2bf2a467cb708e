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
    Best,
    TrainState,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)

CFG = RunConfig(task="toy-transients")


def _state(seed: int, **kw) -> TrainState:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return TrainState(model, optimizer, torch.amp.GradScaler("cuda", enabled=False),
                      torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1), **kw)


def test_the_path_is_named_by_the_config_hash(tmp_path):
    assert checkpoint_path(tmp_path, CFG) == tmp_path / CFG.config_hash / "last.pt"


def test_save_then_restore_continues_every_stream(tmp_path):
    best = Best(0, 0.5, {"weight": torch.ones(3, 4)})
    saved = _state(0, epoch=1, history=[{"epoch": 0, "val_metric_epoch": 0.5}], best=best)
    path = checkpoint_path(tmp_path, CFG)
    save_checkpoint(path, saved.to_checkpoint(CFG))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind
    expected = (torch.rand(3), torch.rand(3, generator=saved.shuffle_gen), torch.rand(3, generator=saved.augment_gen))

    state = load_checkpoint(path, CFG)
    assert state is not None and state["format"] == CHECKPOINT_FORMAT and state["config_hash"] == CFG.config_hash
    other = _state(seed=5)
    other.load(state)
    assert (other.epoch, other.history) == (1, [{"epoch": 0, "val_metric_epoch": 0.5}])
    assert (other.best.epoch, other.best.val) == (0, 0.5) and torch.equal(other.best.state["weight"], torch.ones(3, 4))
    assert all(torch.equal(a, b) for a, b in zip(saved.model.state_dict().values(),
                                                    other.model.state_dict().values(), strict=True))
    assert other.optimizer.state_dict()["state"][0]["step"] == 1
    again = (torch.rand(3), torch.rand(3, generator=other.shuffle_gen), torch.rand(3, generator=other.augment_gen))
    assert all(torch.equal(a, b) for a, b in zip(expected, again, strict=True))


def test_the_end_of_an_epoch_keeps_the_best_weights_and_counts_the_epoch():
    state = _state(0)
    state.end_epoch({"epoch": 0, "val_metric_epoch": 0.4})
    first = state.best.state
    with torch.no_grad():
        state.model.weight.add_(1.0)  # the next epoch moves the weights
    state.end_epoch({"epoch": 1, "val_metric_epoch": 0.3})  # no new best: the copy of epoch 0 stays
    assert (state.epoch, state.best.epoch, state.best.val, len(state.history)) == (2, 0, 0.4, 2)
    assert state.best.state is first and not torch.equal(first["weight"], state.model.weight)


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
    save_checkpoint(path, _state(0, epoch=epoch, best=Best(0, 0.5)).to_checkpoint(CFG))


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
