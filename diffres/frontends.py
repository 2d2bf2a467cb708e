"""Front-ends: every way the suite turns a log-mel ``[B, T, F]`` into classifier input ``[B, C, T', F]``.

One registry, one result type (:class:`~diffres.outputs.FrontendOutput`), so the trainer never
branches on a name:

    fe = create_frontend("avgpool", in_t_dim=500, in_f_dim=128, reduction_rate=0.5)
    out = fe(logmel)              # out.features: [B, fe.out_channels, fe.t_out(T), F]
    frontend_info("diffres-noenc").ablates   # "resolution encoding"

Each entry carries a :class:`FrontendInfo` (family, output channels, what it ablates from which
parent) that the report groups and pairs by. Baselines follow the paper's code: ``spec`` (fixed
resolution, no reduction), ``changehop`` (uniform frame sampling of the 10 ms spectrogram),
``avgpool``/``maxpool``/``avgmaxpool`` (adaptive pooling over time), ``convavgpool`` (learnable conv
residual, then average pooling), ``specpool`` (spectral pooling: keep the lowest temporal
frequencies), and ``diffres``. The paper fed DiffRes 3 channels but pooling 1; ``pool3ch`` is the
capacity-matched control: DiffRes's own aggregation (mean, max, resolution encoding) with uniform
scores, i.e. uniform bins and no learning. ``diffres-noenc`` is the paper's ablation without the
resolution encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffres import functional as Fn
from diffres.diffres import DiffRes
from diffres.outputs import FrontendOutput
from diffres.registry import Registry

__all__ = ["FAMILIES", "FrontendInfo", "create_frontend", "frontend_info", "list_frontends", "register_frontend"]

FAMILIES = ("reference", "uniform reduction", "learned resolution", "learnable filterbank")


@dataclass(frozen=True)
class FrontendInfo:
    """What the report needs to know about a registered front-end, without building it."""

    name: str
    family: str  # one of FAMILIES
    channels: int  # output channels C (the module's out_channels)
    ablates: str | None = None  # what this variant removes from variant_of, e.g. "resolution encoding"
    variant_of: str | None = None  # the registered front-end this one is a variant of
    description: str = ""  # one line


FRONTENDS: Registry[FrontendInfo] = Registry("front-end", "front-ends")


def register_frontend(name: str, *, family: str, channels: int, ablates: str | None = None,
                      variant_of: str | None = None, description: str = ""):
    """Decorator adding a front-end factory ``(in_t_dim, in_f_dim, reduction_rate, **kw) -> nn.Module``
    with its :class:`FrontendInfo`. Rejects a duplicate name, an unknown family, and a variant of a
    front-end that is not registered (an ablation must name its parent)."""
    if name in FRONTENDS:
        raise ValueError(f"front-end {name!r} is already registered")
    if family not in FAMILIES:
        raise ValueError(f"front-end {name!r}: family must be one of {FAMILIES}, got {family!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"front-end {name!r}: channels must be an int >= 1, got {channels!r}")
    if ablates is not None and variant_of is None:
        raise ValueError(f"front-end {name!r} ablates {ablates!r} but names no variant_of (its parent)")
    if variant_of is not None and variant_of not in FRONTENDS:
        raise ValueError(f"front-end {name!r}: variant_of={variant_of!r} is not registered; "
                         f"known front-ends: {', '.join(list_frontends())}")
    return FRONTENDS.register(name, FrontendInfo(name, family, channels, ablates, variant_of, description))


def frontend_info(name: str) -> FrontendInfo:
    """The metadata of front-end ``name``; unknown names raise a ``KeyError`` listing the registered ones."""
    return FRONTENDS.info(name)


def list_frontends(family: str | None = None) -> list[str]:
    """Registered names, sorted; only those of ``family`` (one of ``FAMILIES``) when given."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return FRONTENDS.names(None if family is None else lambda info: info.family == family)


def create_frontend(name: str, in_t_dim: int, in_f_dim: int, reduction_rate: float, **kwargs) -> nn.Module:
    """Build front-end ``name``; unknown names raise a ``KeyError`` listing the registered ones."""
    return FRONTENDS.create(name, in_t_dim=in_t_dim, in_f_dim=in_f_dim, reduction_rate=reduction_rate, **kwargs)


class Frontend(nn.Module):
    """Base class: validates input, reduces time by δ, wraps the result in :class:`FrontendOutput`."""

    out_channels = 1

    def __init__(self, in_t_dim: int, in_f_dim: int, reduction_rate: float):
        super().__init__()
        self.in_t_dim, self.in_f_dim = in_t_dim, in_f_dim
        self.reduction_rate = Fn.validate_reduction_rate(reduction_rate)
        Fn.output_frames(in_t_dim, self.reduction_rate)  # fail at construction if T' < 1

    def t_out(self, t_in: int) -> int:
        return Fn.output_frames(t_in, self.reduction_rate)

    def reduce(self, x: Tensor, t_out: int) -> Tensor:  # [B, T, F] -> [B, C, T', F]
        raise NotImplementedError

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> FrontendOutput:
        Fn.check_input(x, self.in_f_dim)
        if lengths is not None:
            raise ValueError(f"{type(self).__name__} does not support per-clip lengths; only diffres does")
        features = self.reduce(x, self.t_out(x.shape[1]))
        return FrontendOutput(features=features, aux_loss=x.new_zeros(()))


class Spectrogram(Frontend):
    """The fixed-resolution log-mel itself (δ is ignored; T' = T)."""

    def __init__(self, in_t_dim: int, in_f_dim: int, reduction_rate: float = 0.0):
        nn.Module.__init__(self)
        if not (0.0 <= reduction_rate < 1.0):
            raise ValueError(f"reduction_rate must lie in [0, 1) (it is ignored by spec), got {reduction_rate!r}")
        self.in_t_dim, self.in_f_dim, self.reduction_rate = in_t_dim, in_f_dim, 0.0

    def t_out(self, t_in: int) -> int:
        return t_in

    def reduce(self, x: Tensor, t_out: int) -> Tensor:
        return x[:, None]


class ChangeHop(Frontend):
    """Uniform frame sampling: the frame nearest the centre of each of T' equal bins (a larger hop)."""

    def reduce(self, x: Tensor, t_out: int) -> Tensor:
        t_in = x.shape[1]
        idx = ((torch.arange(t_out, device=x.device) + 0.5) * (t_in / t_out)).long().clamp(max=t_in - 1)
        return x[:, idx][:, None]


class Pool(Frontend):
    """Adaptive average / max / average+max pooling over time (in the log-mel domain, as the reference)."""

    def __init__(self, in_t_dim: int, in_f_dim: int, reduction_rate: float, mode: str = "avg"):
        super().__init__(in_t_dim, in_f_dim, reduction_rate)
        if mode not in ("avg", "max", "avgmax"):
            raise ValueError(f"pool mode must be 'avg', 'max' or 'avgmax', got {mode!r}")
        self.mode = mode

    def reduce(self, x: Tensor, t_out: int) -> Tensor:
        xt = x.transpose(1, 2)  # [B, F, T]
        pooled = 0
        if "avg" in self.mode:
            pooled = pooled + F.adaptive_avg_pool1d(xt, t_out)
        if "max" in self.mode:
            pooled = pooled + F.adaptive_max_pool1d(xt, t_out)
        return pooled.transpose(1, 2)[:, None]


class ConvAvgPool(Frontend):
    """A learnable 2-D conv residual on the spectrogram, then average pooling over time."""

    def __init__(self, in_t_dim: int, in_f_dim: int, reduction_rate: float, kernel_size: int = 5):
        super().__init__(in_t_dim, in_f_dim, reduction_rate)
        self.conv = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.conv.weight)  # starts as plain average pooling
        nn.init.zeros_(self.conv.bias)

    def reduce(self, x: Tensor, t_out: int) -> Tensor:
        h = x[:, None] + self.conv(x[:, None])  # [B, 1, T, F]
        return F.adaptive_avg_pool2d(h, (t_out, x.shape[-1]))


class SpectralPool(Frontend):
    """Spectral pooling (Rippel et al. 2015): truncate the temporal DFT to T' frequencies, invert."""

    def reduce(self, x: Tensor, t_out: int) -> Tensor:
        # "forward" normalisation scales by 1/T on the way in only, so a constant stays constant.
        spec = torch.fft.rfft(x, dim=1, norm="forward")[:, : t_out // 2 + 1]
        return torch.fft.irfft(spec, n=t_out, dim=1, norm="forward")[:, None]


class UniformPool3(Frontend):
    """Capacity-matched control: DiffRes's mean / max / resolution encoding with uniform scores."""

    out_channels = 3

    def __init__(self, in_t_dim: int, in_f_dim: int, reduction_rate: float):
        super().__init__(in_t_dim, in_f_dim, reduction_rate)
        self.register_buffer("pos_emb", Fn.sinusoidal_encoding(in_t_dim, in_f_dim), persistent=False)

    def reduce(self, x: Tensor, t_out: int) -> Tensor:
        batch, t_in, _ = x.shape
        score = x.new_full((batch, t_in), t_out / t_in)
        warp = Fn.warp_weights(score, t_out)
        mean, peak = Fn.merge_frames(x, warp, self.reduction_rate)
        pos = Fn.position_table(self.pos_emb, t_in, x)[None]  # [1, T, F], shared by the batch
        return torch.stack([mean, peak, Fn.aggregate_linear(pos, warp)], dim=1)


class DiffResFrontend(DiffRes):
    """DiffRes under the registry's keyword names (``reduction_rate``)."""

    def __init__(self, in_t_dim: int, in_f_dim: int, reduction_rate: float, **kwargs):
        super().__init__(in_t_dim, in_f_dim, reduction_rate, **kwargs)


register_frontend("spec", family="reference", channels=1,
                  description="the fixed-resolution log-mel itself (no reduction)")(Spectrogram)
register_frontend("changehop", family="uniform reduction", channels=1,
                  description="uniform frame sampling: the spectrogram at a larger hop")(ChangeHop)


@register_frontend("avgpool", family="uniform reduction", channels=1,
                   description="adaptive average pooling over time")
def avgpool(**kw) -> nn.Module:
    return Pool(mode="avg", **kw)


@register_frontend("maxpool", family="uniform reduction", channels=1,
                   description="adaptive max pooling over time")
def maxpool(**kw) -> nn.Module:
    return Pool(mode="max", **kw)


@register_frontend("avgmaxpool", family="uniform reduction", channels=1,
                   description="adaptive average plus max pooling over time")
def avgmaxpool(**kw) -> nn.Module:
    return Pool(mode="avgmax", **kw)


register_frontend("convavgpool", family="uniform reduction", channels=1,
                  description="a learnable 2-D conv residual, then average pooling")(ConvAvgPool)
register_frontend("specpool", family="uniform reduction", channels=1,
                  description="spectral pooling: the lowest T' temporal frequencies")(SpectralPool)
register_frontend("pool3ch", family="uniform reduction", channels=3,
                  description="capacity control: DiffRes's 3 channels with uniform scores")(UniformPool3)
register_frontend("diffres", family="learned resolution", channels=3,
                  description="DiffRes: learned scores merge frames; mean, max, resolution encoding")(DiffResFrontend)


# Paper ablation (claim 5): no resolution-encoding channel. (The guide-loss ablation is a recipe
# setting, guide_loss_weight = 0, not a front-end.)
@register_frontend("diffres-noenc", family="learned resolution", channels=2, ablates="resolution encoding",
                   variant_of="diffres", description="DiffRes without the resolution-encoding channel")
def diffres_noenc(**kw) -> nn.Module:
    return DiffResFrontend(resolution_encoding=False, **kw)


# Not an ablation: the same model with a cheaper score network.
@register_frontend("diffres-separable", family="learned resolution", channels=3, variant_of="diffres",
                   description="DiffRes with a depthwise-separable score network (about 1/5 of its FLOPs)")
def diffres_separable(**kw) -> nn.Module:
    return DiffResFrontend(score_network="separable", **kw)
