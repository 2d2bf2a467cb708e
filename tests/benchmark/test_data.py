"""A run's data: the splits of the task at the config's feature settings as tensors, fixed subsets that
are the same for every seed and front-end, and an epoch's shuffled batches that are the DataLoader's."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from benchmark.data import Split, epoch_batches, fixed_subset, load_task_data, n_batches
from benchmark.outages import DiskError


def test_fixed_subset_is_fixed_sorted_and_whole_when_large_enough():
    dataset = list(range(100))
    picked = fixed_subset(dataset, 10)
    assert len(picked) == 10 and picked.indices == sorted(picked.indices)
    torch.manual_seed(123)  # the global RNG has no say
    assert fixed_subset(dataset, 10).indices == picked.indices
    assert fixed_subset(dataset, None) is dataset and fixed_subset(dataset, 100) is dataset


def test_load_task_data_follows_the_config(tiny_config):
    cfg = tiny_config(max_train_clips=8, max_eval_clips=4)
    data = load_task_data(cfg)
    assert (len(data.train), len(data.val), len(data.test)) == (8, 4, 4)
    assert data.spec.name == cfg.task
    assert data.t_in == 1 + data.n_samples // int(cfg.hop_ms * data.spec.sample_rate / 1000)
    item = data.train[0]
    assert item["logmel"].shape == (data.t_in, cfg.n_mels) and item["waveform"].shape == (data.n_samples,)
    assert torch.allclose(data.extractor(item["waveform"][None])[0], item["logmel"], atol=1e-4)
    # the same seed-independent subset for another seed and front-end
    other = load_task_data(cfg.replace(seed=3, frontend="avgpool"))
    assert other.train.indices == data.train.indices


def test_a_split_in_memory_holds_the_feature_caches_numbers(tiny_config):
    """In memory or read per batch from the cache, a split gives the same tensors bit for bit."""
    data = load_task_data(tiny_config(max_train_clips=12, mixup_prob=0.5))
    held = data.train
    assert held.in_memory
    read = Split(held.features, held.indices, waveforms=True, in_memory_bytes=0)
    assert not read.in_memory
    idx = torch.tensor([5, 0, 11, 3])
    assert torch.equal(held.logmel(idx), read.logmel(idx)) and torch.equal(held.waveform(idx), read.waveform(idx))
    cached = held.features.__getitems__([held.indices[i] for i in idx.tolist()])
    assert torch.equal(held.logmel(idx), torch.stack([c["logmel"] for c in cached]))
    assert torch.equal(held.targets[idx], torch.stack([c["target"] for c in cached]))
    for split in (held, read):
        batch = split.batch(idx, waveforms=True)
        assert set(batch) == {"logmel", "target", "waveform"} and set(split.batch(idx)) == {"logmel", "target"}
        assert torch.equal(batch["logmel"], held.logmel(idx)) and torch.equal(batch["waveform"], held.waveform(idx))


@pytest.mark.parametrize(("n_clips", "batch_size"), [(32, 16), (33, 16), (49, 16), (7, 32), (10, 1)])
def test_epoch_batches_are_the_dataloaders_and_leave_its_generator_state(n_clips, batch_size):
    """The order, the dropped batch of one and the generator's state after each epoch match
    DataLoader(shuffle=True): runs and checkpoints from the DataLoader version continue bit for bit."""
    drop_last = n_clips % batch_size == 1 and n_clips > 1
    ours, theirs = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    loader = DataLoader(range(n_clips), batch_size=batch_size, shuffle=True, generator=theirs, drop_last=drop_last)
    for _ in range(3):
        batches = epoch_batches(n_clips, batch_size, ours)
        assert [b.tolist() for b in batches] == [b.tolist() for b in loader]
        assert torch.equal(ours.get_state(), theirs.get_state())
        assert len(batches) == n_batches(n_clips, batch_size)


def test_an_unwritable_feature_cache_names_the_cache_dir(tiny_config, tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("DIFFRES_CACHE_DIR", str(blocker))
    with pytest.raises(DiskError, match="cannot write the feature cache") as err:
        load_task_data(tiny_config(seed=3))
    assert str(blocker) in str(err.value) and "DIFFRES_CACHE_DIR" in str(err.value)
