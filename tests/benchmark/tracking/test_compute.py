"""Compute accounting: DiffRes front-end FLOPs are counted, backbone FLOPs follow T', params split."""

from __future__ import annotations

import pytest
import torch

from benchmark.config import RunConfig
from benchmark.model.classifier import build_model
from benchmark.tracking.compute import count_flops, count_params, describe_device, measure
from diffres import output_frames

T_IN, N_MELS = 200, 64


def model_for(frontend: str, reduction_rate: float):
    cfg = RunConfig(task="toy-transients", frontend=frontend, reduction_rate=reduction_rate, n_mels=N_MELS,
                    freq_mask=8)
    return build_model(cfg, num_classes=5, t_in=T_IN)


@pytest.fixture(scope="module")
def reports():
    return {(fe, d): measure(model_for(fe, d), T_IN, N_MELS, repeats=2)
            for fe, d in [("spec", 0.0), ("diffres", 0.5), ("diffres", 0.75), ("avgpool", 0.5)]}


def test_diffres_frontend_flops_are_counted(reports):
    diffres = reports[("diffres", 0.5)]
    assert diffres.flops_frontend > 0
    # the score network runs on all T frames: at least its convolutions (2 FLOPs per MAC)
    convs = [m for m in model_for("diffres", 0.5).frontend.modules() if isinstance(m, torch.nn.Conv1d)]
    conv_flops = sum(2 * m.weight.numel() * T_IN for m in convs)
    assert diffres.flops_frontend >= conv_flops
    assert reports[("spec", 0.0)].flops_frontend == 0
    assert reports[("avgpool", 0.5)].flops_frontend > 0


def test_backbone_flops_shrink_with_the_number_of_frames(reports):
    """Backbone FLOPs are affine in T': a per-frame cost times T' plus a small fixed head."""
    full = reports[("spec", 0.0)]
    assert (full.t_in, full.t_out) == (T_IN, T_IN)
    points = {}
    for delta in (0.25, 0.5, 0.75, 0.9):
        r = measure(model_for("avgpool", delta), T_IN, N_MELS, repeats=1)
        assert r.t_out == output_frames(T_IN, delta)
        points[r.t_out] = r.flops_backbone
    points[T_IN] = full.flops_backbone
    frames = sorted(points)
    assert all(points[a] < points[b] for a, b in zip(frames, frames[1:]))
    slopes = [(points[b] - points[a]) / (b - a) for a, b in zip(frames, frames[1:])]
    assert max(slopes) / min(slopes) < 1.25
    fixed = points[T_IN] - slopes[-1] * T_IN
    assert abs(fixed) < 0.25 * points[T_IN]
    # DiffRes's 3-channel input costs the backbone the same per frame at every δ
    d50, d75 = reports[("diffres", 0.5)], reports[("diffres", 0.75)]
    assert d75.flops_backbone < d50.flops_backbone


def test_params_are_split_between_frontend_and_backbone(reports):
    model = model_for("diffres", 0.5)
    r = reports[("diffres", 0.5)]
    assert r.params_frontend == count_params(model.frontend) > 0
    assert r.params_total == count_params(model)
    assert reports[("spec", 0.0)].params_frontend == 0
    assert r.flops_total == r.flops_frontend + r.flops_backbone


def test_metrics_carry_the_schema_names(reports):
    names = set(reports[("diffres", 0.5)].metrics())
    assert {"flops_frontend", "flops_backbone", "flops_total", "params_frontend", "params_backbone",
            "params_total", "latency_ms", "t_in", "t_out"} <= names
    assert reports[("diffres", 0.5)].latency_ms > 0


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda x: x.cumsum(1), 3 * 100),
        (lambda x: torch.zeros(3, 10).scatter_add(1, torch.zeros(3, 100, dtype=torch.long), x), 300),
        (lambda x: torch.zeros(10, 100).index_add(0, torch.zeros(3, dtype=torch.long), x), 300),
        (lambda x: x.exp().log(), 600),
        (lambda x: x @ torch.ones(100, 7), 2 * 3 * 100 * 7),
        (lambda x: (x > 0) & (x < 1), 0),  # masks are not floating-point work
    ],
)
def test_ops_torch_counts_as_zero_are_registered(fn, expected):
    assert count_flops(fn, torch.rand(3, 100)) == expected


def test_feature_extraction_is_counted_when_an_extractor_is_given():
    from tasks import FeatureConfig, LogMel

    extractor = LogMel(FeatureConfig(sample_rate=16000, n_mels=N_MELS, win_ms=25.0, hop_ms=10.0))
    fine = LogMel(FeatureConfig(sample_rate=16000, n_mels=N_MELS, win_ms=25.0, hop_ms=1.0))
    coarse_flops = count_flops(extractor, torch.randn(1, 16000))
    fine_flops = count_flops(fine, torch.randn(1, 16000))
    assert coarse_flops > 0
    assert fine_flops / coarse_flops == pytest.approx(10, rel=0.2)  # a 1 ms hop costs ~10x the frames
    r = measure(model_for("spec", 0.0), T_IN, N_MELS, extractor=extractor, n_samples=16000, repeats=1)
    assert r.flops_features == coarse_flops


def test_device_is_named():
    assert describe_device("cpu").startswith("cpu:")
