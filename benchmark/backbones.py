"""Small audio backbones, registered in timm's own registry (`timm.create_model(name, ...)`).

`audiocnn_tiny`: three 3x3 conv + BN + ReLU blocks (8-16-32 channels; the first strides 2 in
frequency) that pool only in frequency, so every frame of the front-end's output keeps its own column;
then the mean over frequency, two dilated 1-D convolutions over time (receptive field ~19 frames) and
mean + max pooling over time into a linear head initialised small. It sees `[B, C, T', F]` (time as
height, mel bins as width) like every timm backbone here and trains from scratch on a CPU in a few ms
per clip: the `quick` suite's backbone. Importing `benchmark.model` (or `benchmark.config`'s backbone
check) registers it.
"""

from __future__ import annotations

import torch
from timm.models import register_model
from torch import Tensor, nn


def _conv2d(cin: int, cout: int, stride: tuple[int, int] = (1, 1)) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _conv1d(c: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c, c, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm1d(c),
                         nn.ReLU(inplace=True))


class AudioCNN(nn.Module):
    """conv blocks (frequency pooling only) -> mean over F -> dilated temporal convs -> mean+max over T -> head."""

    def __init__(self, in_chans: int = 1, num_classes: int = 1000, widths: tuple[int, ...] = (8, 16, 32),
                 dilations: tuple[int, ...] = (2, 4), stem_freq_stride: int = 2, drop_rate: float = 0.0,
                 head_init_std: float = 0.01):
        super().__init__()
        layers, c = [], in_chans
        for i, w in enumerate(widths):
            layers += [_conv2d(c, w, (1, stem_freq_stride if i == 0 else 1)), nn.MaxPool2d((1, 2), ceil_mode=True)]
            c = w
        self.stem = nn.Sequential(*layers)
        self.temporal = nn.Sequential(*[_conv1d(c, d) for d in dilations])
        self.num_features = 2 * c  # mean and max over time
        self.drop_rate = drop_rate
        self.head_init_std = head_init_std
        self.num_classes = num_classes
        self.head = self._new_head(num_classes)

    def _new_head(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        head = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(head.weight, std=self.head_init_std)
        nn.init.zeros_(head.bias)
        return head

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head = self._new_head(num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """[B, C, T, F] -> [B, D, T, 1] (one D-vector per input frame)."""
        h = self.stem(x).mean(dim=3)  # [B, D, T]
        return self.temporal(h).unsqueeze(-1)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        h = x.squeeze(-1)
        h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)  # [B, 2D]
        if self.drop_rate > 0:
            h = nn.functional.dropout(h, self.drop_rate, self.training)
        return h if pre_logits else self.head(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def audiocnn_tiny(pretrained: bool = False, **kwargs) -> AudioCNN:
    """8-16-32 channels, ~13 k parameters; no pretrained weights exist (`pretrained=True` raises)."""
    if pretrained:
        raise ValueError("audiocnn_tiny has no pretrained weights; use pretrained=False "
                         "(or RunConfig.pretrained_weights with a local state_dict)")
    kwargs.pop("pretrained_cfg", None)
    kwargs.pop("pretrained_cfg_overlay", None)
    kwargs.pop("cache_dir", None)
    return AudioCNN(**kwargs)
