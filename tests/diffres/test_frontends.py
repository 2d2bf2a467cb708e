"""Every registered front-end's contract, DiffRes's reference-compatible API, and bad arguments."""

import pytest
import torch

from diffres import DiffRes, create_frontend, list_frontends, output_frames

T, F = 120, 16


@pytest.fixture
def logmel():
    return torch.randn(3, T, F, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list_frontends())
@pytest.mark.parametrize("rate", [0.25, 0.5, 0.75])
def test_shape_contract(name, rate, logmel):
    fe = create_frontend(name, in_t_dim=T, in_f_dim=F, reduction_rate=rate)
    out = fe(logmel)
    t_out = T if name == "spec" else output_frames(T, rate)
    assert fe.t_out(T) == t_out
    channels = {"spec": 1, "pool3ch": 3, "diffres": 3, "diffres-noenc": 2, "diffres-separable": 3}
    assert fe.out_channels == channels.get(name, 1)
    assert out.features.shape == (3, fe.out_channels, t_out, F)
    assert out.aux_loss.shape == ()
    assert torch.isfinite(out.features).all()


@pytest.mark.parametrize("name", list_frontends())
def test_any_length_at_forward_time_and_batch_consistency(name, logmel):
    # Seeded: batched and single convs differ by ~1e-7 in the scores, and the max channel's log(w)
    # turns that into dw / w, so an unlucky init (a max held by a frame overlapping its output by
    # ~1e-3) moves it by ~1e-4. Mathematically the two are equal; this checks the code paths agree.
    torch.manual_seed(0)
    fe = create_frontend(name, in_t_dim=T, in_f_dim=F, reduction_rate=0.5).eval()
    longer = torch.randn(2, 2 * T + 7, F)
    assert fe(longer).features.shape[2] == fe.t_out(2 * T + 7)
    with torch.no_grad():
        batch = fe(logmel).features
        single = torch.cat([fe(logmel[i : i + 1]).features for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-4)  # float32 batched vs single kernels


@pytest.mark.parametrize("name", list_frontends())
def test_gradients_reach_the_input_and_every_parameter(name, logmel):
    fe = create_frontend(name, in_t_dim=T, in_f_dim=F, reduction_rate=0.5)
    x = logmel.clone().requires_grad_()
    out = fe(x)
    (out.features.square().mean() + out.aux_loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in fe.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    if name.startswith("diffres"):
        assert fe.score_net.head.weight.grad.abs().sum() > 0  # the score network learns through the warp


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


def test_diffres_score_network_has_the_papers_size():
    assert sum(p.numel() for p in DiffRes(1000, 128, 0.5).score_net.parameters()) == pytest.approx(82_000, rel=0.02)


def test_separable_score_network_is_a_fifth_of_the_papers_and_rejects_unknown_kinds():
    paper, separable = (DiffRes(1000, 128, 0.5, score_network=k).score_net for k in ("paper", "separable"))
    n_paper, n_sep = (sum(p.numel() for p in net.parameters()) for net in (paper, separable))
    assert 0.15 < n_sep / n_paper < 0.25
    with pytest.raises(ValueError, match="score_network must be one of"):
        DiffRes(1000, 128, 0.5, score_network="tiny")


def test_pointwise_conv_equals_conv1d_on_both_layouts():
    from diffres.diffres import Pointwise

    torch.manual_seed(0)
    layer = Pointwise(16, 8, 1)
    x = torch.randn(2, 50, 16)  # [B, T, C] memory, seen as [B, C, T]
    plain = torch.nn.functional.conv1d(x.transpose(1, 2).contiguous(), layer.weight, layer.bias)
    assert torch.allclose(layer(x.transpose(1, 2)), plain, atol=1e-6)  # time-major: one linear
    assert torch.allclose(layer(x.transpose(1, 2).contiguous()), plain, atol=1e-6)  # [B, C, T]: baddbmm


@pytest.mark.parametrize(("taps", "padding"), [(5, 2), (3, 1), (5, 0), (5, 4)])
def test_depthwise_conv_backward_is_exact(taps, padding):
    from diffres.diffres import Depthwise, _DepthwiseConv

    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, taps, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: _DepthwiseConv.apply(x, w, b, padding), (x, w, b))
    # Float32, against autograd of nn.Conv1d with the same parameters; and only some inputs needing grads.
    layer = Depthwise(8, 5)
    plain = torch.nn.Conv1d(8, 8, 5, padding=2, groups=8)
    plain.load_state_dict(layer.state_dict())
    x32 = torch.randn(4, 8, 300)
    grads = []
    for module in (layer, plain):
        xi = x32.clone().requires_grad_()
        y = module(xi)
        grads.append([y, *torch.autograd.grad(y.sin().sum(), (xi, module.weight, module.bias))])
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(*grads))
    layer.bias.requires_grad_(False)
    (gw,) = torch.autograd.grad(layer(x32).sin().sum(), layer.weight)
    assert torch.allclose(gw, grads[1][2], atol=1e-4)


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


def test_pool3ch_with_uniform_bins_is_average_and_max_pooling():
    fe = create_frontend("pool3ch", in_t_dim=T, in_f_dim=F, reduction_rate=0.5)
    x = torch.randn(2, T, F)
    mean, peak, _ = fe(x).features.unbind(1)
    pairs = x.view(2, T // 2, 2, F)
    assert torch.allclose(mean, pairs.logsumexp(2) - torch.log(torch.tensor(2.0)), atol=1e-5)
    assert torch.allclose(peak, pairs.amax(2) + torch.log(torch.tensor(0.5 / 0.5)), atol=1e-5)


def test_spectral_pooling_keeps_a_constant_and_changehop_samples_frames():
    x = torch.full((1, T, F), 2.5)
    assert torch.allclose(create_frontend("specpool", T, F, 0.5)(x).features, torch.full((1, 1, 60, F), 2.5))
    ramp = torch.arange(T, dtype=torch.float32)[None, :, None].expand(1, T, F)
    picked = create_frontend("changehop", T, F, 0.75)(ramp).features[0, 0, :, 0]
    assert picked.tolist() == [2.0 + 4 * k for k in range(30)]


@pytest.mark.parametrize("name", list_frontends())
def test_bad_arguments_raise_clear_errors(name):
    bad_rates = [1.0, 1.2, -0.1] if name == "spec" else [0.0, 1.0, 1.2, -0.1]
    for rate in bad_rates:
        with pytest.raises(ValueError, match="reduction_rate"):
            create_frontend(name, T, F, rate)
    fe = create_frontend(name, T, F, 0.5)
    with pytest.raises(ValueError, match="mel bins"):
        fe(torch.randn(2, T, F + 1))
    for value in (float("nan"), float("inf"), -float("inf")):
        x = torch.randn(2, T, F)
        x[1, T // 2, 3] = value  # one bad value among finite ones
        with pytest.raises(ValueError, match="NaN or Inf"):
            fe(x)
    fe.eval()(torch.full((1, T, F), 3e38))  # finite values whose sums overflow are accepted
    with pytest.raises(ValueError, match=r"\[B, T, F\]"):
        fe(torch.randn(T, F))
    for empty in (torch.randn(0, T, F), torch.randn(2, 0, F)):
        with pytest.raises(ValueError, match="at least one clip of at least one frame"):
            fe(empty)


def test_unknown_frontend_lists_known_ones():
    with pytest.raises(KeyError, match="diffres"):
        create_frontend("leaf", T, F, 0.5)


def test_too_few_output_frames_is_rejected():
    with pytest.raises(ValueError, match="T'"):
        create_frontend("avgpool", in_t_dim=3, in_f_dim=F, reduction_rate=0.9)


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
    # Large batches are merged a few clips at a time (diffres.diffres.clip_groups); one clip per group
    # must give the same outputs and gradients as the whole batch at once.
    import diffres.diffres as module

    torch.manual_seed(0)
    model = DiffRes(100, 16, 0.5, learn_pos_emb=True)
    x = torch.randn(5, 100, 16)
    x[1, 20:30] = x[1].min()  # a time-masked stretch, so the guide loss is live
    lengths = None if lengths is None else torch.tensor(lengths)
    runs = []
    for group_bytes in (2**40, 1):
        monkeypatch.setattr(module, "GROUP_BYTES", group_bytes)
        xg = x.clone().requires_grad_()
        out = model(xg, lengths=lengths)
        (out.features.square().mean() + out.aux_loss).backward()
        runs.append((out, xg.grad, [p.grad.clone() for p in model.parameters()]))
        model.zero_grad(set_to_none=True)
    assert module.clip_groups(x, 1) == [slice(i, i + 1) for i in range(5)]
    assert module.clip_groups(x, 2**40) == [slice(0, 5)]
    (whole, gx_whole, gp_whole), (grouped, gx_grouped, gp_grouped) = runs
    for field in ("features", "score", "aux_loss", "activeness", "avgpool", "maxpool", "resolution_enc"):
        assert torch.allclose(getattr(whole, field), getattr(grouped, field), atol=1e-6), field
    assert torch.allclose(gx_whole, gx_grouped, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(gp_whole, gp_grouped))
