"""Class-balanced sampling (PSLA's weighted sampler by inverse label frequency) and the batch size that
may grow with δ: near-uniform label frequencies on a skewed set, multi-label aware, deterministic for a
seed, resume-safe (the draws come from the checkpointed generator), and the uniform shuffle unchanged."""

from __future__ import annotations

import torch

from benchmark.config import RunConfig
from benchmark.training.data import epoch_batches
from benchmark.training.sampling import balanced_batches, balanced_weights, train_batch_size, train_batches

SKEWED = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)  # 90 % / 9 % / 1 %


def _cfg(**kw) -> RunConfig:
    return RunConfig(task="toy-transients", balanced_sampling=True, batch_size=32, **kw)


def test_sampled_labels_of_a_skewed_set_are_near_uniform():
    gen = torch.Generator().manual_seed(0)
    drawn = torch.cat([torch.cat(train_batches(_cfg(), SKEWED, 3, gen)) for _ in range(5)])
    share = torch.bincount(SKEWED[drawn], minlength=3).float() / len(drawn)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.03), share
    uniform = torch.cat(epoch_batches(len(SKEWED), 32, torch.Generator().manual_seed(0)))
    assert torch.bincount(SKEWED[uniform], minlength=3)[2] == 10  # the plain shuffle keeps the skew


def test_multi_label_weights_sum_the_inverse_frequencies_of_a_clips_labels():
    targets = torch.tensor([[1, 0, 0]] * 8 + [[1, 1, 0]] * 2 + [[0, 0, 1]] * 2)  # counts 10 / 2 / 2
    w = balanced_weights(targets, 3)
    assert torch.allclose(w[:8], torch.full((8,), 1 / 10, dtype=torch.float64))
    assert torch.allclose(w[8:10], torch.full((2,), 1 / 10 + 1 / 2, dtype=torch.float64))
    assert torch.allclose(w[10:], torch.full((2,), 1 / 2, dtype=torch.float64))
    drawn = torch.cat([torch.cat(balanced_batches(w, 4, torch.Generator().manual_seed(s))) for s in range(50)])
    per_label = targets[drawn].sum(0).float()
    raw = targets.sum(0).float()
    # label 0 holds 71 % of the label occurrences in the data; far less once balanced
    assert per_label[0] / per_label.sum() < 0.5 < raw[0] / raw.sum()


def test_deterministic_for_a_seed_and_different_across_seeds():
    def draw(seed):
        return torch.cat(train_batches(_cfg(), SKEWED, 3, torch.Generator().manual_seed(seed)))

    assert torch.equal(draw(7), draw(7)) and not torch.equal(draw(7), draw(8))


def test_a_resumed_generator_draws_the_epochs_an_uninterrupted_one_draws():
    """The trainer checkpoints the shuffle generator's state after each epoch (benchmark.training.checkpoint)."""
    cfg, gen = _cfg(), torch.Generator().manual_seed(3)
    epochs = [train_batches(cfg, SKEWED, 3, gen) for _ in range(4)]
    gen = torch.Generator().manual_seed(3)
    for _ in range(2):
        train_batches(cfg, SKEWED, 3, gen)
    saved = gen.get_state()
    resumed = torch.Generator()
    resumed.set_state(saved)
    for epoch in (2, 3):
        assert all(torch.equal(a, b) for a, b in zip(train_batches(cfg, SKEWED, 3, resumed), epochs[epoch],
                                                     strict=True))


def test_batches_cover_an_epoch_and_drop_a_last_single_clip():
    batches = train_batches(_cfg(), SKEWED[:65], 3, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [32, 32]  # 65 = 2 x 32 + 1: the lone clip is dropped
    assert sum(len(b) for b in train_batches(_cfg(), SKEWED[:70], 3, torch.Generator())) == 70


def test_the_batch_size_can_grow_with_the_reduction_rate():
    cfg = RunConfig(task="toy-transients", batch_size=32, reduction_rate=0.75)
    assert train_batch_size(cfg) == 32
    assert train_batch_size(cfg.replace(batch_size_scales_with_rate=True)) == 128
    assert train_batch_size(cfg.replace(frontend="spec", batch_size_scales_with_rate=True)) == 32
