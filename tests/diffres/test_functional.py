"""Properties of the DiffRes maths (diffres.functional and its kernels in diffres.merge), checked
against the dense O(T*T') oracle (diffres.reference)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffres import functional as Fn
from diffres.reference import dense_merge, dense_weights


@pytest.fixture(autouse=True, scope="module")
def float64():
    """Exactness checks run in float64; restore the default for the other test modules."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def random_scores(batch: int, t_in: int, t_out: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(batch, t_in, generator=g) ** 3 + 1e-3
    return Fn.normalize_scores(raw, t_out)


shapes = st.tuples(st.integers(1, 3), st.integers(2, 60), st.floats(0.05, 0.95), st.integers(0, 10_000))


@settings(max_examples=60, deadline=None)
@given(shapes)
def test_normalized_scores_sum_to_t_out_and_stay_in_unit_interval(args):
    batch, t_in, rate, seed = args
    t_out = Fn.output_frames(t_in, rate) if t_in * (1 - rate) >= 1 else 1
    s = random_scores(batch, t_in, t_out, seed)
    assert torch.allclose(s.sum(1), torch.full((batch,), float(t_out)), atol=1e-9)
    assert (s >= 0).all() and (s <= 1 + 1e-12).all()


@settings(max_examples=60, deadline=None)
@given(shapes)
def test_normalization_preserves_score_order(args):
    batch, t_in, rate, seed = args
    t_out = max(1, math.floor(t_in * (1 - rate)))
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(batch, t_in, generator=g) + 1e-3
    s = Fn.normalize_scores(raw, t_out)
    i, j = torch.triu_indices(t_in, t_in, 1)
    bigger = raw[:, i] > raw[:, j]
    assert (s[:, i][bigger] >= s[:, j][bigger] - 1e-12).all()


@settings(max_examples=60, deadline=None)
@given(shapes)
def test_sparse_warp_equals_dense_oracle_and_weights_sum_to_one(args):
    batch, t_in, rate, seed = args
    t_out = max(1, math.floor(t_in * (1 - rate)))
    s = random_scores(batch, t_in, t_out, seed)
    weights = Fn.warp_weights(s, t_out)
    dense = dense_weights(s, t_out)
    eye = torch.eye(t_in).expand(batch, -1, -1)
    sparse = Fn.aggregate_linear(eye, weights).transpose(1, 2)  # [B, T, T'] from the fast path
    assert torch.allclose(sparse, dense, atol=1e-9)
    assert torch.allclose(dense.sum(1), torch.ones(batch, t_out), atol=1e-9)  # each output frame: 1
    assert torch.allclose(dense.sum(2), s, atol=1e-9)  # each input frame spends its score


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_mean_aggregation_conserves_mass_and_is_order_preserving(args):
    batch, t_in, rate, seed = args
    t_out = max(1, math.floor(t_in * (1 - rate)))
    s = random_scores(batch, t_in, t_out, seed)
    x = torch.randn(batch, t_in, 4, generator=torch.Generator().manual_seed(seed))
    y, _ = Fn.merge_frames(x, Fn.warp_weights(s, t_out), rate)
    # mass: sum_j exp(y_j) == sum_i s_i exp(x_i)
    assert torch.allclose(y.exp().sum(1), (s[..., None] * x.exp()).sum(1), rtol=1e-9)
    # order: a monotone ramp stays monotone after merging
    ramp = torch.linspace(-3, 3, t_in).expand(batch, t_in)[..., None]
    merged = Fn.merge_frames(ramp, Fn.warp_weights(s, t_out), rate)[0][..., 0]
    assert (merged[:, 1:] >= merged[:, :-1] - 1e-9).all()


def test_flat_scores_at_small_rate_are_the_identity():
    x = torch.randn(2, 50, 8)
    t_out = 50
    s = Fn.normalize_scores(torch.full((2, 50), 0.3), t_out)
    assert torch.allclose(s, torch.ones(2, 50))
    w = Fn.warp_weights(s, t_out)
    assert torch.allclose(Fn.merge_frames(x, w, 0.01)[0], x, atol=1e-12)
    assert torch.allclose(Fn.aggregate_linear(x, w), x)


def test_max_aggregation_matches_dense_oracle():
    s = random_scores(2, 40, 13, seed=3)
    x = torch.randn(2, 40, 5)
    dense = dense_weights(s, 13)  # [B, T, T']
    expected = ((dense[..., None] * x.exp()[:, :, None]).amax(1) / (1 - 0.6)).log()
    _, got = Fn.merge_frames(x, Fn.warp_weights(s, 13), reduction_rate=0.6)
    assert torch.allclose(got, expected, atol=1e-9)
    assert torch.allclose(dense_merge(x, dense, 0.6)[1], expected, atol=1e-12)


def test_aggregation_is_exact_for_extreme_log_values():
    x = torch.tensor([[[800.0], [790.0], [-900.0], [-905.0]]])
    s = Fn.normalize_scores(torch.ones(1, 4), 2)
    y, _ = Fn.merge_frames(x, Fn.warp_weights(s, 2), 0.5)
    assert torch.isfinite(y).all()
    assert torch.allclose(y[0, :, 0], torch.stack([torch.logsumexp(x[0, :2, 0], 0), torch.logsumexp(x[0, 2:, 0], 0)])
                          + math.log(0.5))
    assert torch.allclose(dense_merge(x, dense_weights(s, 2), 0.5)[0], y)  # the oracle's log-domain path


def test_gradcheck_through_normalisation_and_aggregation():
    torch.manual_seed(0)
    raw = (torch.rand(2, 12) * 0.8 + 0.1).requires_grad_()
    x = torch.randn(2, 12, 3, requires_grad=True)

    def warp(raw, x):
        s = Fn.normalize_scores(raw, 5)
        w = Fn.warp_weights(s, 5)
        return (*Fn.merge_frames(x, w, 0.6), Fn.aggregate_linear(x, w))

    assert torch.autograd.gradcheck(warp, (raw, x), eps=1e-7, atol=1e-5)


def dense_forward(raw: torch.Tensor, x: torch.Tensor, t_out: int, rate: float):
    """The whole warp by the oracle, differentiated by autograd: dense weights, mean, max, linear sum."""
    w = dense_weights(Fn.normalize_scores(raw, t_out), t_out)  # [B, T, T']
    return (*dense_merge(x, w, rate), torch.einsum("bij,bif->bjf", w, x))


@settings(max_examples=40, deadline=None)
@given(st.tuples(st.integers(1, 3), st.integers(2, 60), st.floats(0.3, 0.95), st.integers(0, 10_000)),
       st.sampled_from([1.0, 400.0]))
def test_hand_written_backward_equals_autograd_of_the_dense_oracle(args, x_scale):
    # x_scale 400 spans more than half float64's exponent range: the per-output-frame shift path
    # (and the oracle's log-domain one; at x_scale 1 the oracle takes its matmul path).
    # Scores within a factor 2 of each other and δ >= 0.3 never saturate, so no frame boundary
    # lands exactly on an output boundary (a kink, where the two forms pick different one-sided
    # derivatives).
    batch, t_in, rate, seed = args
    t_out = max(1, math.floor(t_in * (1 - rate)))
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(batch, t_in, generator=g) + 1.0
    x = torch.randn(batch, t_in, 3, generator=g) * x_scale
    x[:, t_in // 3: t_in // 2] = x.min()  # a masked stretch: equal frames, ties in the max
    probes = [torch.randn(batch, t_out, 3, generator=g) for _ in range(3)]

    def grads(outputs, inputs):
        loss = sum((o * p).sum() for o, p in zip(outputs, probes))
        return torch.autograd.grad(loss, inputs)

    raw_a, x_a = raw.clone().requires_grad_(), x.clone().requires_grad_()
    w = Fn.warp_weights(Fn.normalize_scores(raw_a, t_out), t_out)
    fast = (*Fn.merge_frames(x_a, w, rate), Fn.aggregate_linear(x_a, w))
    raw_b, x_b = raw.clone().requires_grad_(), x.clone().requires_grad_()
    dense = dense_forward(raw_b, x_b, t_out, rate)
    for got, expected in zip(fast, dense):
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9)
    for got, expected in zip(grads(fast, (raw_a, x_a)), grads(dense, (raw_b, x_b))):
        assert torch.allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_tied_maxima_share_the_gradient():
    # Two equal frames with equal weights in each output frame: the max has two arg-maxima.
    x = torch.zeros(1, 4, 2, requires_grad=True)
    w = Fn.warp_weights(torch.full((1, 4), 0.5), 2)
    _, peak = Fn.merge_frames(x, w, 0.5)
    (grad,) = torch.autograd.grad(peak.sum(), x)
    assert torch.allclose(grad, torch.full((1, 4, 2), 0.5))


def test_gradcheck_on_the_wide_range_path():
    torch.manual_seed(1)
    raw = (torch.rand(2, 12) * 0.8 + 0.1).requires_grad_()
    x = (torch.randn(2, 12, 3) * 500).requires_grad_()

    def warp(raw, x):
        w = Fn.warp_weights(Fn.normalize_scores(raw, 5), 5)
        return Fn.merge_frames(x, w, 0.6)

    assert torch.autograd.gradcheck(warp, (raw, x), eps=1e-7, atol=1e-5)


def test_merge_without_gradients_gives_the_same_numbers():
    raw = torch.rand(2, 30) + 0.1
    x = torch.randn(2, 30, 4)
    w = Fn.warp_weights(Fn.normalize_scores(raw.requires_grad_(), 10), 10)
    with_grad = Fn.merge_frames(x, w, 0.6)
    with torch.no_grad():
        without = Fn.merge_frames(x, w, 0.6)
    for a, b in zip(with_grad, without):
        assert torch.equal(a.detach(), b)


def test_normalisation_saturates_dominant_scores_and_fills_the_rest():
    raw = torch.tensor([[10.0, 1.0, 1.0, 1.0, 1.0]])
    s = Fn.normalize_scores(raw, 3)
    assert torch.allclose(s, torch.tensor([[1.0, 0.5, 0.5, 0.5, 0.5]]))


def test_per_clip_targets_and_mask():
    raw = torch.rand(2, 10) + 0.1
    mask = Fn.length_mask(torch.tensor([10, 6]), 2, 10, raw.device)
    s = Fn.normalize_scores(raw, torch.tensor([5, 3]), mask)
    assert torch.allclose(s.sum(1), torch.tensor([5.0, 3.0]))
    assert (s[1, 6:] == 0).all()


def test_guide_loss_and_activeness_on_known_numbers():
    score = torch.tensor([[0.9, 0.1, 0.5, 0.5], [0.1, 0.1, 0.9, 0.9]])
    empty = torch.tensor([[True, False, False, False], [True, True, False, False]])
    # clip 0: empty mean 0.9 > (1-0.5)/2 -> kept; clip 1: 0.1 -> dropped
    assert torch.isclose(Fn.guide_loss(score, empty, 0.5), torch.tensor(0.9))
    # at δ = 0.9 the threshold is 0.05: both clips count, mean of 0.9 and 0.1
    assert torch.isclose(Fn.guide_loss(score, empty, 0.9), torch.tensor(0.5))
    # no clip above threshold -> 0
    assert Fn.guide_loss(score * 0.1, empty, 0.5) == 0
    act = Fn.activeness(score, ~empty)
    expected = (torch.tensor([0.1, 0.5, 0.5]).std() + torch.tensor([0.9, 0.9]).std()) / 2
    assert torch.isclose(act, expected)


def test_empty_frames_are_those_at_the_clip_floor():
    x = torch.randn(2, 20, 8)
    x[0, 5:8] = -50.0  # a time mask: every bin at the clip's floor
    x[1, 0] = -60.0
    x[1, 1, :4] = -60.0  # half the bins at the floor is still content
    empty = Fn.empty_frame_mask(x)
    assert empty[0].nonzero().flatten().tolist() == [5, 6, 7]
    assert empty[1].nonzero().flatten().tolist() == [0]


def test_a_clip_without_masks_or_padding_has_no_empty_frame_and_no_guide_loss():
    x = torch.randn(4, 50, 16)
    empty = Fn.empty_frame_mask(x)
    assert not empty.any()  # its quietest frame is not empty
    assert Fn.guide_loss(torch.rand(4, 50), empty, 0.5) == 0


def test_padding_is_never_empty_and_does_not_set_the_floor():
    x = torch.randn(2, 30, 8)
    x[0, 20:] = -100.0  # padding, below every real value
    x[0, 3] = x[0, :20].min()  # a masked frame inside the clip
    mask = torch.arange(30)[None, :] < torch.tensor([[20], [30]])
    empty = Fn.empty_frame_mask(x, mask)
    assert empty[0].nonzero().flatten().tolist() == [3]
    assert not empty[1].any()


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_bad_reduction_rate_is_rejected(rate):
    with pytest.raises(ValueError, match="reduction_rate"):
        Fn.validate_reduction_rate(rate)


def test_output_frames_rounding_and_too_few_frames():
    assert Fn.output_frames(10, 0.9) == 1  # 10 * (1 - 0.9) is 0.9999999999999998 in floats
    assert Fn.output_frames(1000, 0.75) == 250
    with pytest.raises(ValueError, match="T' "):
        Fn.output_frames(3, 0.8)


def test_per_clip_frames_round_like_output_frames_and_reject_empty_outputs():
    lengths = torch.tensor([10, 1000, 20])
    assert Fn.per_clip_frames(lengths, 0.9).tolist() == [Fn.output_frames(int(n), 0.9) for n in lengths]
    with pytest.raises(ValueError, match=r"lengths \[3\] give T' < 1"):
        Fn.per_clip_frames(torch.tensor([100, 3]), 0.8)


def test_position_table_is_cut_cast_and_extended_unless_learnable():
    table = Fn.sinusoidal_encoding(10, 4, dtype=torch.float32)
    like = torch.zeros(1, dtype=torch.float64)
    short = Fn.position_table(table, 6, like)
    assert short.dtype == torch.float64 and torch.equal(short, table[:6].double())
    assert torch.allclose(Fn.position_table(table, 25, like), Fn.sinusoidal_encoding(25, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="learnable position table has 10 frames"):
        Fn.position_table(torch.nn.Parameter(table), 25, like)


def test_clip_groups_split_the_batch_by_bytes():
    x = torch.zeros(5, 100, 16, dtype=torch.float32)  # 6400 bytes a clip
    assert Fn.clip_groups(x, 1) == [slice(i, i + 1) for i in range(5)]
    assert Fn.clip_groups(x, 2 * 6400) == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert Fn.clip_groups(x, 2**40) == [slice(0, 5)]
