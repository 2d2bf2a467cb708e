"""The classifier of a run: a `diffres` front-end feeding a timm backbone, behind a learnable filterbank
when the run has one.

Input: the cached log-mel `[B, T, F]` for `filterbank="mel"`; the waveform `[B, N]` otherwise, which the
model's own filterbank (`diffres.filterbanks`, trained with it) turns into `[B, T, F]` on the same frame
grid. SpecAugment then runs inside the forward, between filterbank and front-end (`augment`).

Sizes flow from the front-end: the backbone gets `in_chans = frontend.out_channels` and sees the
front-end's `[B, C, T', F]` output as an image (time as height, mel bins as width).
The backbone's initial weights come from timm's own pretrained machinery (`RunConfig.pretrained`:
none, imagenet or a file; `benchmark.pretrained`), and its head from `benchmark.heads` (`RunConfig.head`:
timm's linear classifier or PSLA's attention pooling). The older `pretrained_weights` (a local state
dict, loaded shape-tolerantly below; keys whose shapes do not fit, the classifier head or a stem with
other input channels, are adapted or left at their fresh initialisation, and the count is logged) is kept
for the configs that use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from benchmark.backbones import backbone_kwargs  # (importing it registers audiocnn_tiny in timm)
from benchmark.config import RunConfig
from benchmark.heads import get_head
from benchmark.pretrained import timm_kwargs as pretrained_kwargs
from diffres import FrontendOutput, create_filterbank, create_frontend, filterbank_info

log = logging.getLogger(__name__)


class Classifier(nn.Module):
    def __init__(self, frontend: nn.Module, backbone: nn.Module, filterbank: nn.Module | None = None):
        super().__init__()
        self.frontend = frontend
        self.backbone = backbone
        self.filterbank = filterbank  # None: the input is the cached log-mel (no parameters, state dict unchanged)

    def forward(self, x: Tensor, augment: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, FrontendOutput]:
        """x: log-mel [B, T, F], or waveform [B, N] with a filterbank; `augment` (SpecAugment) maps the
        filterbank's [B, T, F] before the front-end (the mel path augments before calling the model)."""
        if self.filterbank is not None:
            x = self.filterbank(x)  # [B, N] -> [B, T, F]
            if augment is not None:
                x = augment(x)
        out = self.frontend(x)  # [B, T, F] -> out.features [B, C, T', F]
        return self.backbone(out.features), out  # logits [B, num_classes]


def learned_filterbank(cfg: RunConfig) -> bool:
    """True when `cfg`'s filterbank is trained with the model (its input is then the waveform)."""
    return filterbank_info(cfg.filterbank).learnable


def build_model(cfg: RunConfig, *, num_classes: int, t_in: int) -> Classifier:
    """Front-end and backbone of `cfg` for inputs of `t_in` frames and `cfg.n_mels` bins."""
    frontend = create_frontend(cfg.frontend, in_t_dim=t_in, in_f_dim=cfg.n_mels, reduction_rate=cfg.reduction_rate)
    t_out = frontend.t_out(t_in)
    if t_out < 1:
        raise ValueError(f"frontend={cfg.frontend!r} at reduction_rate={cfg.reduction_rate} leaves T'={t_out} "
                         f"frames of T={t_in}; expected T' >= 1")
    frame_ms = cfg.hop_ms * t_in / t_out  # what one backbone input frame spans, on average
    head = get_head(cfg.head)
    body = timm.create_model(cfg.backbone, in_chans=frontend.out_channels,
                             num_classes=num_classes if head.timm_classifier else 0,
                             **pretrained_kwargs(cfg.pretrained), **backbone_kwargs(cfg.backbone, frame_ms))
    if cfg.pretrained_weights is not None:
        load_backbone_weights(body, Path(cfg.pretrained_weights))
    filterbank = None  # built last: a mel run draws exactly the random numbers it drew before filterbanks
    if learned_filterbank(cfg):
        filterbank = create_filterbank(cfg.filterbank, n_bands=cfg.n_mels, win_ms=cfg.win_ms, hop_ms=cfg.hop_ms)
    return Classifier(frontend, head.attach(body, num_classes), filterbank)


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
