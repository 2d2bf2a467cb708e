"""Every registered front-end's contract (diffres.frontends), the registry and its metadata, the
baselines' maths, and bad arguments."""

import pytest
import torch

import diffres
from diffres import FAMILIES, FrontendInfo, create_frontend, frontend_info, list_frontends, output_frames

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


@pytest.mark.parametrize("name", list_frontends())
def test_registry_metadata_matches_the_module(name):
    info = frontend_info(name)
    assert isinstance(info, FrontendInfo) and info.name == name and info.family in FAMILIES
    fe = create_frontend(name, in_t_dim=T, in_f_dim=F, reduction_rate=0.5)
    assert fe.out_channels == info.channels
    assert info.description and "\n" not in info.description
    assert info.variant_of is None or info.variant_of in list_frontends()
    assert info.ablates is None or info.variant_of is not None
    assert name in list_frontends(info.family)


def test_registry_families_and_variants():
    assert list_frontends("reference") == ["spec"]
    assert list_frontends("learned resolution") == ["diffres", "diffres-noenc", "diffres-separable"]
    assert set(list_frontends("uniform reduction")) == {
        "changehop", "avgpool", "maxpool", "avgmaxpool", "convavgpool", "specpool", "pool3ch"}
    assert sorted(sum((list_frontends(f) for f in FAMILIES), [])) == list_frontends()
    assert frontend_info("pool3ch").channels == 3
    noenc, separable = frontend_info("diffres-noenc"), frontend_info("diffres-separable")
    assert (noenc.variant_of, noenc.ablates, noenc.channels) == ("diffres", "resolution encoding", 2)
    assert (separable.variant_of, separable.ablates, separable.channels) == ("diffres", None, 3)
    assert "separable" in separable.description
    assert frontend_info("diffres").variant_of is None and frontend_info("avgpool").ablates is None
    with pytest.raises(ValueError, match="family must be one of"):
        list_frontends("pooling")
    with pytest.raises(KeyError, match="known front-ends: avgmaxpool"):
        frontend_info("leaf")
    assert diffres.FrontendInfo is FrontendInfo and diffres.frontend_info is frontend_info


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"family": "pooling", "channels": 1}, "family must be one of"),
    ({"family": "reference", "channels": 0}, "channels must be an int >= 1"),
    ({"family": "reference", "channels": 1, "ablates": "x"}, "names no variant_of"),
    ({"family": "reference", "channels": 1, "variant_of": "nope"}, "variant_of='nope' is not registered"),
])
def test_register_rejects_bad_metadata(kwargs, message):
    with pytest.raises(ValueError, match=message):
        diffres.register_frontend("test-bad", **kwargs)
    assert "test-bad" not in list_frontends()


def test_register_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        diffres.register_frontend("avgpool", family="uniform reduction", channels=1)
    assert frontend_info("avgpool").description == "adaptive average pooling over time"
