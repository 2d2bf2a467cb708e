"""The classifier of a run: filterbank -> SpecAugment -> `diffres` front-end -> timm backbone.

One input path: the model reads the waveform `[B, N]` and its first stage, the filterbank
(`diffres.filterbanks`), turns it into `[B, T, F]` on the run's device, per batch. The `mel` filterbank is
just a filterbank without parameters, followed by the task's log-mel normalisation as a fixed affine layer
(`Standardise`, the train split's mean / std from `tasks.features.train_statistics`). Its buffers (mel
matrix, window, mean, std) are derived from the config and the task, so they stay out of the state dict:
checkpoints and weight averaging hold what they held before the mel moved into the model. SpecAugment runs
inside the forward, between filterbank and front-end (`augment`). A caller that already holds the
filterbank's output for these clips (the CPU in-memory speed-up, `benchmark.training.data`) passes it as `features`:
the same numbers, computed once.

Sizes flow from the front-end: the backbone gets `in_chans = frontend.out_channels` and sees the
front-end's `[B, C, T', F]` output as an image (time as height, mel bins as width).
The backbone's initial weights come from timm's own pretrained machinery (`RunConfig.pretrained`:
none, imagenet or a file; `benchmark.model.pretrained`), and its head from `benchmark.model.heads` (`RunConfig.head`:
timm's linear classifier or PSLA's attention pooling). The older `pretrained_weights` (a local state
dict, loaded shape-tolerantly below; keys whose shapes do not fit, the classifier head or a stem with
other input channels, are adapted or left at their fresh initialisation, and the count is logged) is kept
for the configs that use it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from benchmark.config import RunConfig
from benchmark.model.backbones import backbone_kwargs  # (importing it registers audiocnn_tiny in timm)
from benchmark.model.heads import get_head
from benchmark.model.pretrained import timm_kwargs as pretrained_kwargs
from diffres import FrontendOutput, create_filterbank, create_frontend, filterbank_info

log = logging.getLogger(__name__)


class Standardise(nn.Module):
    """(x - mean) / std with fixed scalars: the task's log-mel normalisation as a layer."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"Standardise: expected a finite mean and a std > 0, got mean={mean!r}, std={std!r}")
        # float32 0-dim tensors: the arithmetic of the old cache's read path, bit for bit
        self.register_buffer("mean", torch.tensor(float(mean)), persistent=False)
        self.register_buffer("std", torch.tensor(float(std)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    def __init__(self, frontend: nn.Module, backbone: nn.Module, filterbank: nn.Module):
        super().__init__()
        self.frontend = frontend
        self.backbone = backbone
        self.filterbank = filterbank  # waveform [B, N] -> [B, T, F]; the mel's has no parameters

    def forward(self, waveform: Tensor, augment: Callable[[Tensor], Tensor] | None = None,
                features: Tensor | None = None) -> tuple[Tensor, FrontendOutput]:
        """waveform [B, N] -> (logits [B, num_classes], front-end output). `augment` (SpecAugment) maps the
        filterbank's [B, T, F] before the front-end; `features`, when given, is `self.filterbank(waveform)`
        already computed (held in memory by the caller)."""
        x = self.filterbank(waveform) if features is None else features  # [B, T, F]
        if augment is not None:
            x = augment(x)
        out = self.frontend(x)  # [B, T, F] -> out.features [B, C, T', F]
        return self.backbone(out.features), out  # logits [B, num_classes]


def task_normalised(cfg: RunConfig) -> bool:
    """Whether `cfg`'s filterbank output is standardised with the task's train statistics: a fixed
    filterbank (the mel) is; a learned one normalises itself (its `FilterbankInfo.normalisation`)."""
    return not filterbank_info(cfg.filterbank).learnable


def trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _derived(module: nn.Module) -> nn.Module:
    """Re-register every buffer of `module` as non-persistent (values from the config, not the state dict)."""
    for sub in module.modules():
        for name, buf in list(sub.named_buffers(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, buf, persistent=False)
    return module


def build_filterbank(cfg: RunConfig, stats: tuple[float, float] | None = None) -> nn.Module:
    """The model's first stage for `cfg`: its filterbank, then `Standardise(*stats)` when the filterbank is
    task-normalised. `stats` None (FLOP counts, benches without data) standardises with (0, 1)."""
    from tasks import get_task

    fb = create_filterbank(cfg.filterbank, n_bands=cfg.n_mels, sample_rate=get_task(cfg.task).sample_rate,
                           win_ms=cfg.win_ms, hop_ms=cfg.hop_ms)
    if not task_normalised(cfg):
        return fb
    return _derived(nn.Sequential(fb, Standardise(*(stats if stats is not None else (0.0, 1.0)))))


def build_model(cfg: RunConfig, *, num_classes: int, t_in: int,
                stats: tuple[float, float] | None = None) -> Classifier:
    """Filterbank, front-end and backbone of `cfg` for inputs of `t_in` frames and `cfg.n_mels` bins;
    `stats` = the task's log-mel (mean, std) for a task-normalised filterbank (see `build_filterbank`).
    Each component draws its initial weights from its own stream of `cfg.seed` (`benchmark.training.seeds`)."""
    from benchmark.training.seeds import global_stream

    with global_stream(cfg.seed, "frontend"):
        frontend = create_frontend(cfg.frontend, in_t_dim=t_in, in_f_dim=cfg.n_mels,
                                   reduction_rate=cfg.reduction_rate)
    t_out = frontend.t_out(t_in)  # >= 1: RunConfig checked it (and the front-end refuses T' < 1 itself)
    frame_ms = cfg.hop_ms * t_in / t_out  # what one backbone input frame spans, on average
    head = get_head(cfg.head)
    with global_stream(cfg.seed, "backbone"):
        body = timm.create_model(cfg.backbone, in_chans=frontend.out_channels,
                                 num_classes=num_classes if head.timm_classifier else 0,
                                 **pretrained_kwargs(cfg.pretrained), **backbone_kwargs(cfg.backbone, frame_ms))
    if cfg.pretrained_weights is not None:
        load_backbone_weights(body, Path(cfg.pretrained_weights))
    with global_stream(cfg.seed, "filterbank"):
        filterbank = build_filterbank(cfg, stats)
    with global_stream(cfg.seed, "head"):
        backbone = head.attach(body, num_classes)
    return Classifier(frontend, backbone, filterbank)


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Load a local state_dict (tensors only: `weights_only=True`) into `backbone`, shape-tolerantly."""
    if not path.is_file():
        raise FileNotFoundError(f"RunConfig.pretrained_weights={str(path)!r}: no such file "
                                f"(expected a torch state_dict saved with torch.save)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"RunConfig.pretrained_weights={str(path)!r}: not a loadable weights file: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"RunConfig.pretrained_weights={str(path)!r}: expected a state_dict (name -> tensor)")
    own = backbone.state_dict()
    kept, skipped = {}, []
    for name, value in state.items():
        target = own.get(name)
        if target is None or not isinstance(value, Tensor):
            skipped.append(name)
        elif value.shape == target.shape:
            kept[name] = value
        elif value.dim() == 4 and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]:
            # an ImageNet stem (3 channels) on a 1-channel front-end: timm's own channel adaptation
            kept[name] = timm.models.adapt_input_conv(target.shape[1], value)
        else:
            skipped.append(name)
    if not kept:
        raise ValueError(f"RunConfig.pretrained_weights={str(path)!r}: no tensor matches the backbone's "
                         f"parameters (is it a state_dict of the same timm model?)")
    backbone.load_state_dict(kept, strict=False)
    fresh = sorted(set(own) - set(kept))
    log.info("loaded %d tensors from %s; %d left at initialisation (e.g. the head: %s); %d ignored",
             len(kept), path, len(fresh), fresh[:3], len(skipped))
