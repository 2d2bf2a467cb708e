"""Compute accounting of a model: parameters, FLOPs per clip, measured latency per clip.

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` on one clip (batch 1, forward, eval
mode), for the front-end and the backbone separately, so DiffRes's score network (which runs at the
full input length T) is charged to DiffRes and the backbone's saving from T' < T shows on its own.

What is counted (the same rules for every module, so front-ends and backbones are comparable):
- matmul / linear / convolution: torch's own formulas, 2 FLOPs per multiply-accumulate;
- the ops torch counts as zero, registered here at one FLOP per element they produce or consume:
  elementwise arithmetic and nonlinearities (add, mul, div, exp, log, sigmoid, relu, hardswish, ...),
  min/max/clamp, reductions and scans over their input (sum, mean, amax, logsumexp, cumsum),
  scatter / index-add / scatter-reduce / index-reduce over their source, pooling over its input, batch norm at
  2 per element (scale and shift), sort at n·log2(n) comparisons per row, FFTs at 2.5·n·log2(n) per
  real transform and 5·n·log2(n) per complex one;
- not counted: ops producing integers or booleans (index arithmetic, masks, the input finiteness
  check), abs (a sign bit), indexing, copies, reshapes, random numbers.
Feature extraction (STFT + mel + log) is counted separately as `flops_features` when the task's
extractor is given: a 1 ms hop costs about 10x the frames of a 10 ms hop before any front-end runs.

The filterbank (waveform -> [B, T, F], the model's first stage) is counted as `flops_filterbank`: for the
`mel` its STFT + mel + log + normalisation (= `flops_features`), for a learned filterbank its own (LEAF's
stride-1 401-tap convolution costs about as much as a small CNN backbone on 1 s of audio).
`flops_pipeline` = filterbank + front-end (reducer) + backbone is the cost of a clip from its waveform,
the report's cost axis; `flops_total` (front-end + backbone) keeps its meaning for older runs.
`latency_pipeline_ms` likewise times a clip from its waveform (the whole model); `latency_ms` the front-end
and backbone on the filterbank's output.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode, get_shape

aten = torch.ops.aten


def _numel(shape) -> int:
    return math.prod(shape) if isinstance(shape, (torch.Size, tuple, list)) else 1


def _per_output(*args, out_shape=None, **kwargs) -> int:
    if isinstance(out_shape, (tuple, list)) and out_shape and isinstance(out_shape[0], torch.Size):
        return _numel(out_shape[0])
    return _numel(out_shape)


def _per_input(x_shape, *args, out_shape=None, **kwargs) -> int:
    return _numel(x_shape)


def _per_source(self_shape, dim=None, index_shape=None, src_shape=None, *args, out_shape=None, **kwargs) -> int:
    return _numel(src_shape) if isinstance(src_shape, torch.Size) else _numel(index_shape)


def _index_add(self_shape, dim, index_shape, source_shape, *args, out_shape=None, **kwargs) -> int:
    return _numel(source_shape)


def _batch_norm(x_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * _numel(x_shape)


def _sort(x_shape, dim=-1, *args, out_shape=None, **kwargs) -> int:
    n = x_shape[dim] if len(x_shape) else 1
    return _numel(x_shape) * max(1, math.ceil(math.log2(max(n, 2))))


def _fft(per_point: float):
    def formula(x_shape, dim=None, *args, out_shape=None, **kwargs) -> int:
        dims = list(dim) if isinstance(dim, (list, tuple)) else [len(x_shape) - 1]
        n = math.prod(x_shape[d] for d in dims) or 1
        return int(per_point * _numel(x_shape) * math.log2(max(n, 2)))

    return formula


_POINTWISE = [
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "neg", "reciprocal", "pow", "sqrt", "rsqrt",
    "exp", "exp_", "log", "log_", "log1p", "expm1", "sin", "cos", "sigmoid", "sigmoid_", "tanh", "relu",
    "relu_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "silu", "silu_", "gelu", "elu",
    "leaky_relu", "softplus", "minimum", "maximum", "clamp", "clamp_", "clamp_min", "clamp_min_",
    "clamp_max", "clamp_max_", "addcmul", "addcdiv", "lerp", "_softmax", "_log_softmax",
]
_REDUCTIONS = ["sum", "mean", "amax", "amin", "max", "min", "logsumexp", "cumsum", "cumprod", "var", "std",
               "prod", "norm", "linalg_vector_norm"]
_POOLS = ["avg_pool1d", "avg_pool2d", "max_pool1d", "max_pool2d", "max_pool2d_with_indices",
          "_adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool1d", "_adaptive_avg_pool3d"]


def _floating_only(formula):
    """Count an op only when it produces floating-point values (not masks or index arithmetic)."""

    def raw(*args, out_val=None, **kwargs) -> int:
        first = out_val[0] if isinstance(out_val, (tuple, list)) else out_val
        if isinstance(first, Tensor) and not (first.is_floating_point() or first.is_complex()):
            return 0
        args, kwargs, out_shape = tree_map(get_shape, (args, kwargs, out_val))
        return formula(*args, out_shape=out_shape, **kwargs)

    raw._get_raw = True  # FlopCounterMode then passes tensors, not shapes
    return raw


def _mapping() -> dict:
    mapping: dict = {}

    def add(names: Sequence[str], formula) -> None:
        for name in names:
            if hasattr(aten, name):
                mapping[getattr(aten, name)] = _floating_only(formula)

    add(_POINTWISE, _per_output)
    add(_REDUCTIONS, _per_input)
    add(_POOLS, _per_input)
    add(["scatter_add", "scatter_add_", "scatter_reduce", "scatter_reduce_"], _per_source)
    add(["index_add", "index_add_", "index_reduce", "index_reduce_"], _index_add)
    add(["native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training"],
        _batch_norm)
    add(["sort"], _sort)
    add(["_fft_r2c", "_fft_c2r"], _fft(2.5))
    add(["_fft_c2c"], _fft(5.0))
    return mapping


FLOP_MAPPING = _mapping()


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs of calling `fn(*args, **kwargs)` under no_grad, with the rules in the module docstring."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=FLOP_MAPPING) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class ComputeReport:
    params_frontend: int
    params_backbone: int
    flops_frontend: int  # per clip, forward
    flops_backbone: int
    flops_features: int  # waveform -> log-mel, per clip (0 when no extractor was given)
    latency_ms: float  # per clip, forward of front-end + backbone, batch 1, median
    latency_threads: int
    latency_device: str
    t_in: int
    t_out: int
    params_filterbank: int = 0  # a learned filterbank's parameters (0 for the mel)
    flops_filterbank: int = 0  # waveform -> [T, F] per clip: the extractor's, or the learned filterbank's
    latency_pipeline_ms: float = math.nan  # per clip from the waveform (extractor or filterbank + model)

    @property
    def params_total(self) -> int:
        return self.params_filterbank + self.params_frontend + self.params_backbone

    @property
    def flops_pipeline(self) -> int:
        return self.flops_filterbank + self.flops_total

    @property
    def flops_total(self) -> int:
        return self.flops_frontend + self.flops_backbone

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics of the run schema (flops_total excludes feature extraction)."""
        return {
            "params_frontend": self.params_frontend, "params_backbone": self.params_backbone,
            "params_total": self.params_total, "flops_frontend": self.flops_frontend,
            "flops_backbone": self.flops_backbone, "flops_total": self.flops_total,
            "flops_features": self.flops_features, "latency_ms": self.latency_ms,
            "t_in": self.t_in, "t_out": self.t_out, "params_filterbank": self.params_filterbank,
            "flops_filterbank": self.flops_filterbank, "flops_pipeline": self.flops_pipeline,
            "latency_pipeline_ms": self.latency_pipeline_ms,
        }


def measure(model: nn.Module, t_in: int, n_mels: int, *, extractor: nn.Module | None = None,
            n_samples: int | None = None, device: torch.device | str = "cpu", repeats: int = 5) -> ComputeReport:
    """Params, FLOPs and latency of a `Classifier` (filterbank + front-end + backbone) for one clip of `t_in`
    frames (`n_samples` samples; default: the samples that give `t_in` frames on the filterbank's hop).
    `extractor`: the task's log-mel, counted as `flops_features`.

    The model is put in eval mode for the measurement and restored afterwards.
    """
    device = torch.device(device)
    was_training = model.training
    filterbank = model.filterbank  # waveform -> [B, T, F]: every model has one (the mel has no parameters)
    model.eval()
    try:
        n_samples = n_samples or _samples_for(filterbank, t_in)
        wave = 0.1 * torch.randn(1, n_samples, device=device)  # [1, N]
        flops_features = count_flops(extractor, wave.cpu()) if extractor is not None else 0
        flops_filterbank = count_flops(filterbank, wave)
        with torch.no_grad():
            x = filterbank(wave)  # [1, T, F]
        flops_frontend = count_flops(model.frontend, x)
        with torch.no_grad():
            features = model.frontend(x).features  # [1, C, T', F]
        flops_backbone = count_flops(model.backbone, features)
        latency = measure_latency(lambda f: model(wave, features=f), x, repeats=repeats)  # front-end + backbone
        pipeline = measure_latency(model, wave, repeats=repeats)  # from the waveform
    finally:
        model.train(was_training)
    return ComputeReport(
        params_frontend=count_params(model.frontend), params_backbone=count_params(model.backbone),
        flops_frontend=flops_frontend, flops_backbone=flops_backbone, flops_features=flops_features,
        latency_ms=latency, latency_threads=torch.get_num_threads(), latency_device=describe_device(device),
        t_in=t_in, t_out=int(features.shape[2]),
        params_filterbank=count_params(filterbank),
        flops_filterbank=flops_filterbank, latency_pipeline_ms=pipeline,
    )


def _samples_for(filterbank: nn.Module, t_in: int) -> int:
    """Samples of a clip of `t_in` frames on the filterbank's grid (T = 1 + N // hop)."""
    hop = getattr(filterbank, "hop_length", None) or filterbank[0].hop_length
    return (t_in - 1) * hop


def measure_latency(model: nn.Module, x: Tensor, *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time (ms) of `model(x)` under no_grad; CUDA is synchronised around each call."""
    with torch.no_grad():
        return median_seconds(partial(model, x), x.device, repeats=repeats, warmup=warmup) * 1000.0


def median_seconds(fn: Callable[[], object], device: torch.device | str, *, repeats: int, warmup: int = 1) -> float:
    """Median wall time (s) of `fn()` over `repeats` calls after `warmup` untimed ones (allocations, cuDNN
    autotuning); CUDA is synchronised around each call. The benches time training steps with it."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(statistics.median(times))


def describe_device(device: torch.device | str) -> str:
    """A human name for the machine a number was measured on."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    from benchmark.tracking.numerics import cpu_model

    return f"cpu:{cpu_model()} ({torch.get_num_threads()} threads)"
