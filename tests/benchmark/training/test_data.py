"""A run's data: the splits of the task at the config's feature settings as tensors, fixed subsets that
are the same for every seed and front-end, and an epoch's shuffled batches."""

from __future__ import annotations

import pytest
import torch

from benchmark.tracking.outages import DiskError
from benchmark.training.data import Split, epoch_batches, fixed_indices, load_task_data, n_batches
from benchmark.training.steps import make_model


def test_fixed_indices_are_fixed_sorted_and_whole_when_large_enough():
    picked = fixed_indices(100, 10)
    assert len(picked) == 10 and picked == sorted(picked)
    torch.manual_seed(123)  # the global RNG has no say
    assert fixed_indices(100, 10) == picked
    assert fixed_indices(100, None) == list(range(100)) and fixed_indices(100, 100) == list(range(100))


def test_load_task_data_follows_the_config(tiny_config):
    cfg = tiny_config(max_train_clips=8, max_eval_clips=4)
    data = load_task_data(cfg)
    assert (len(data.train), len(data.val), len(data.test)) == (8, 4, 4)
    assert data.spec.name == cfg.task
    assert data.t_in == 1 + data.n_samples // int(cfg.hop_ms * data.spec.sample_rate / 1000)
    item = data.train[0]
    assert set(item) == {"waveform", "target"} and item["waveform"].shape == (data.n_samples,)
    assert data.extractor(item["waveform"][None]).shape == (1, data.t_in, cfg.n_mels)
    # the same seed-independent subset for another seed and front-end
    other = load_task_data(cfg.replace(seed=3, frontend="avgpool"))
    assert other.train.indices == data.train.indices


def test_held_features_are_the_models_numbers_and_reads_are_the_caches(tiny_config):
    """In memory or read per batch from the cache, a split gives the same waveforms bit for bit; the features
    a CPU run holds are exactly what the model's first stage computes per batch (one input path)."""
    cfg = tiny_config(max_train_clips=12)
    data = load_task_data(cfg)
    held = data.train
    assert held.in_memory
    read = Split(held.source, held.indices, in_memory_bytes=0)
    assert not read.in_memory
    idx = torch.tensor([5, 0, 11, 3])
    assert torch.equal(held.waveform(idx), read.waveform(idx))
    assert set(held.batch(idx)) == {"waveform", "target"}
    model = make_model(cfg, data.spec.num_classes, data.t_in, torch.device("cpu"), stats=data.stats)
    data.hold_features(model.filterbank, torch.device("cpu"))
    with torch.no_grad():
        assert torch.equal(held.batch(idx)["features"], model.filterbank(held.waveform(idx)))
    assert not read.hold_features(model.filterbank)  # no memory budget: the model computes them
    leaf = make_model(cfg.replace(filterbank="leaf", n_mels=40), data.spec.num_classes, data.t_in,
                      torch.device("cpu"))
    with pytest.raises(ValueError, match="trainable parameters"):
        read.hold_features(leaf.filterbank)


@pytest.mark.parametrize(("n_clips", "batch_size"), [(32, 16), (33, 16), (49, 16), (7, 32), (10, 1)])
def test_epoch_batches_cover_every_clip_once_and_follow_the_generator(n_clips, batch_size):
    """An epoch is one permutation of the clips (a last batch of one dropped), a function of the generator."""
    for _ in range(3):
        ours, again = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        batches = epoch_batches(n_clips, batch_size, ours)
        assert [b.tolist() for b in batches] == [b.tolist() for b in epoch_batches(n_clips, batch_size, again)]
        flat = torch.cat(batches).tolist()
        dropped = n_clips % batch_size == 1 and n_clips > 1
        assert len(flat) == n_clips - dropped and len(set(flat)) == len(flat)
        assert all(len(b) <= batch_size for b in batches) and len(batches) == n_batches(n_clips, batch_size)


def test_an_unwritable_feature_cache_names_the_cache_dir(tiny_config, tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("DIFFRES_CACHE_DIR", str(blocker))
    with pytest.raises(DiskError, match="cannot write the feature cache") as err:
        load_task_data(tiny_config(seed=3))
    assert str(blocker) in str(err.value) and "DIFFRES_CACHE_DIR" in str(err.value)


def test_a_data_seed_draws_new_clips_of_the_same_task(tiny_config):
    """A draw is new train, val and test clips from the same generator, with ids that name the draw."""
    first, second = load_task_data(tiny_config()), load_task_data(tiny_config(data_seed=1))
    assert len(first.test) == len(second.test) and first.t_in == second.t_in
    assert not set(first.test.clip_ids()) & set(second.test.clip_ids())
    idx = torch.arange(4)
    assert not torch.equal(first.train.waveform(idx), second.train.waveform(idx))
    assert second.spec.embedded.seed == 1 and "data_seed=1" in second.spec.source
