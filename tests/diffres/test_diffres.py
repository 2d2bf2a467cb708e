"""DiffRes (diffres.diffres): the reference-compatible API, padded batches, autocast, float64
against the dense oracle, and merging in groups of clips."""

import pytest
import torch

from diffres import DiffRes
from diffres import functional as Fn
from diffres.reference import dense_diffres

T, F = 120, 16


def test_diffres_reference_api():
    model = DiffRes(in_t_dim=T, in_f_dim=F, dimension_reduction_rate=0.6, learn_pos_emb=True)
    ret = model(torch.randn(2, T, F))
    t_out = int(T * (1 - 0.6))
    assert ret["feature"].shape == (2, 3, t_out, F)
    assert ret["score"].shape == (2, T, 1)
    for key in ("avgpool", "maxpool", "resolution_enc"):
        assert ret[key].shape == (2, t_out, F)
    assert ret["guide_loss"].shape == () and ret["activeness"].shape == ()
    assert torch.allclose(ret["score"].sum((1, 2)), torch.full((2,), float(t_out)), atol=1e-3)
    assert torch.equal(ret["feature"][:, 0], ret["avgpool"])
    with pytest.raises(KeyError, match="not an output field"):
        ret["nope"]


@pytest.mark.parametrize("score_network", ["paper", "separable"])
@pytest.mark.parametrize("ramp", [0.0, 100.0])  # 100: a log range past 43 nats, the per-output-shift path
def test_diffres_padded_batch_matches_clips_alone(score_network, ramp):
    torch.manual_seed(0)
    model = DiffRes(in_t_dim=T, in_f_dim=F, dimension_reduction_rate=0.5, score_network=score_network).eval()
    # A slow ramp widens the range without making neighbours differ by more than a nat (noise of 1e-7
    # in a weight moves log(w·e^x) by e^(x_i - x_j)·1e-7, so huge jumps between frames are ill-posed).
    a = torch.randn(1, T, F) + torch.linspace(0, ramp, T)[:, None]
    b = torch.randn(1, 80, F) + torch.linspace(0, ramp * 80 / T, 80)[:, None]
    padded = torch.cat([a, torch.nn.functional.pad(b, (0, 0, 0, T - 80), value=3.0)])
    with torch.no_grad():
        out = model(padded, lengths=torch.tensor([T, 80]))
        alone_a, alone_b = model(a), model(b)
    assert out.lengths.tolist() == [60, 40]
    assert torch.allclose(out.features[0], alone_a.features[0], atol=1e-5)
    assert torch.allclose(out.features[1, :, :40], alone_b.features[0], atol=1e-5)
    assert (out.features[1, :, 40:] == 0).all()
    assert torch.allclose(out.score[1, :80], alone_b.score[0], atol=1e-5)
    kept = [loss for loss in (alone_a.aux_loss, alone_b.aux_loss) if loss > 0]
    expected = torch.stack(kept).mean() if kept else torch.tensor(0.0)
    assert torch.allclose(out.aux_loss, expected, atol=1e-5)


def test_guide_loss_sees_time_masked_frames():
    torch.manual_seed(0)
    model = DiffRes(in_t_dim=T, in_f_dim=F, dimension_reduction_rate=0.5)
    x = torch.randn(2, T, F)
    x[:, 30:60] = x.min()  # a SpecAugment time mask leaves frames at the clip minimum
    out = model(x)
    masked_score = out.score[:, 30:60].mean()
    expected = masked_score if masked_score > 0.25 else torch.tensor(0.0)
    assert torch.isclose(out.aux_loss, expected, atol=1e-4)


@pytest.mark.parametrize("score_network", ["paper", "separable"])
def test_diffres_under_autocast_keeps_scores_in_float32(score_network):
    # CPU bfloat16 autocast stands in for CUDA AMP: the convs run in low precision, but the scores,
    # the budget T' and the merged features must stay float32 (in bf16 the budget drifted to 50.25).
    torch.manual_seed(0)
    model = DiffRes(200, 32, 0.75, score_network=score_network)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(4, 200, 32))
    assert out.score.dtype == torch.float32 and out.features.dtype == torch.float32
    assert torch.allclose(out.score.sum((1, 2)), torch.full((4,), 50.0), atol=1e-4)
    out.features.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("score_network", ["paper", "separable"])
def test_padded_batch_gradients_are_finite_and_zero_on_padding(score_network):
    torch.manual_seed(0)
    model = DiffRes(100, 16, 0.5, score_network=score_network)
    x = torch.randn(3, 100, 16, requires_grad=True)
    out = model(x, lengths=torch.tensor([100, 60, 37]))
    (out.features.sum() + out.aux_loss).backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert (x.grad[1, 60:] == 0).all() and (x.grad[2, 37:] == 0).all()


@pytest.mark.parametrize("lengths", [None, [100, 60, 37, 100, 81]])
def test_merging_in_groups_of_clips_changes_nothing(monkeypatch, lengths):
    # Large batches are merged a few clips at a time (diffres.functional.clip_groups); one clip per
    # group must give the same outputs and gradients as the whole batch at once.
    torch.manual_seed(0)
    model = DiffRes(100, 16, 0.5, learn_pos_emb=True)
    x = torch.randn(5, 100, 16)
    x[1, 20:30] = x[1].min()  # a time-masked stretch, so the guide loss is live
    lengths = None if lengths is None else torch.tensor(lengths)
    runs = []
    for group_bytes in (2**40, 1):
        monkeypatch.setattr(Fn, "GROUP_BYTES", group_bytes)
        xg = x.clone().requires_grad_()
        out = model(xg, lengths=lengths)
        (out.features.square().mean() + out.aux_loss).backward()
        runs.append((out, xg.grad, [p.grad.clone() for p in model.parameters()]))
        model.zero_grad(set_to_none=True)
    assert Fn.clip_groups(x, 1) == [slice(i, i + 1) for i in range(5)]
    assert Fn.clip_groups(x, 2**40) == [slice(0, 5)]
    (whole, gx_whole, gp_whole), (grouped, gx_grouped, gp_grouped) = runs
    for field in ("features", "score", "aux_loss", "activeness", "avgpool", "maxpool", "resolution_enc"):
        assert torch.allclose(getattr(whole, field), getattr(grouped, field), atol=1e-6), field
    assert torch.allclose(gx_whole, gx_grouped, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(gp_whole, gp_grouped))


@pytest.mark.parametrize("score_network", ["paper", "separable"])
@pytest.mark.parametrize("padded", [False, True])
def test_float64_diffres_equals_the_dense_oracle(score_network, padded):
    # A float64 module computes in float64 end to end (scores included), so the sparse warp and the
    # dense overlap matrix agree to rounding; scores forced to float32 gave ~3e-5.
    torch.manual_seed(0)
    model = DiffRes(T, F, 0.6, score_network=score_network).double().eval()
    x = torch.randn(3, T, F, dtype=torch.float64)
    x[0, 30:50] = x[0].min()  # a masked stretch: ties in the max, empty frames for the guide loss
    lengths = torch.tensor([T, 77, 100]) if padded else None
    with torch.no_grad():
        out = model(x, lengths=lengths)
        features, score = dense_diffres(model, x, lengths)
    assert out.score.dtype == out.features.dtype == torch.float64
    assert torch.allclose(out.score[..., 0], score, rtol=0, atol=1e-10)
    assert torch.allclose(out.features, features, rtol=0, atol=1e-10)
    if padded:
        assert out.lengths.tolist() == [48, 30, 40]
