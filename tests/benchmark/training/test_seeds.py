"""One random stream per consumer: a component's initial weights depend on the run seed and its own name only."""

from __future__ import annotations

import pytest
import torch

from benchmark.training import seeds
from benchmark.training.data import load_task_data
from benchmark.training.steps import make_model


def test_streams_differ_by_seed_and_consumer_and_are_fixed():
    values = {(s, name): seeds.stream_seed(s, name) for s in range(3) for name in seeds.STREAMS}
    assert len(set(values.values())) == len(values)  # seed 1's shuffle is not seed 0's augmentation
    assert all(0 <= v < 2**63 for v in values.values())
    assert seeds.stream_seed(0, "shuffle") == seeds.stream_seed(0, "shuffle")
    with pytest.raises(ValueError, match="unknown random stream 'dropout'"):
        seeds.stream_seed(0, "dropout")


def test_global_stream_leaves_the_callers_generator_as_it_was():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeds.global_stream(0, "frontend"):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected) and not torch.equal(inside, expected)


def test_initial_weights_do_not_depend_on_what_drew_before(tiny_config):
    cfg = tiny_config(frontend="diffres")
    data = load_task_data(cfg)

    def weights(draws_before: int) -> dict[str, torch.Tensor]:
        torch.rand(draws_before)  # whatever ran before in the process
        return make_model(cfg, data.spec.num_classes, data.t_in, torch.device("cpu"), stats=data.stats).state_dict()

    first, second = weights(0), weights(1000)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    other = make_model(cfg.replace(seed=1), data.spec.num_classes, data.t_in, torch.device("cpu"),
                       stats=data.stats).state_dict()
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())
