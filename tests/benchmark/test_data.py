"""A run's data: the splits of the task at the config's feature settings, and fixed subsets that are the
same for every seed and front-end."""

from __future__ import annotations

import torch

from benchmark.data import fixed_subset, load_task_data


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
