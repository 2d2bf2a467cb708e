"""The classifier of a run: a `diffres` front-end feeding a timm backbone.

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
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from benchmark.backbones import backbone_kwargs  # (importing it registers audiocnn_tiny in timm)
from benchmark.config import RunConfig
from benchmark.heads import get_head
from benchmark.pretrained import timm_kwargs as pretrained_kwargs
from diffres import FrontendOutput, create_frontend

log = logging.getLogger(__name__)


class Classifier(nn.Module):
    def __init__(self, frontend: nn.Module, backbone: nn.Module):
        super().__init__()
        self.frontend = frontend
        self.backbone = backbone

    def forward(self, logmel: Tensor) -> tuple[Tensor, FrontendOutput]:
        out = self.frontend(logmel)  # [B, T, F] -> out.features [B, C, T', F]
        return self.backbone(out.features), out  # logits [B, num_classes]


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
    return Classifier(frontend, head.attach(body, num_classes))


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
