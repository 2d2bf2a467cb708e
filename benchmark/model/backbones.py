"""Small audio backbones, registered in timm's own registry (`timm.create_model(name, ...)`).

`audiocnn_tiny` (and `audiocnn_wide`, the same with a 670 ms receptive field): three 3x3 conv + BN + ReLU
blocks (8-16-32 channels; the first strides 2 in frequency) that pool only in frequency, so every frame of the
front-end's output keeps its own column;
then the mean over frequency, two dilated 1-D convolutions over time (receptive field ~19 frames at
10 ms) and mean + max pooling over time into a linear head initialised small.

Its receptive field is kept in milliseconds, not frames: the model is told how long one input frame
is (``frame_ms``: the hop times T / T', which `benchmark.model.classifier` computes) and, for frames shorter
than 10 ms, stretches the temporal dilations so the whole receptive field spans round(10 / frame_ms)
times the frames it spans at 10 ms (~190 ms of audio either way). So a 5 ms spectrogram gets
the receptive field a 10 ms one has (so a finer hop alone does not shrink what the classifier sees,
which would confound claim 3), while the parameter count stays the same and every output of 10 ms
or coarser frames (all reductions of a 10 ms input, and DiffRes on a 5 ms input at δ = 0.5) keeps
the architecture unchanged. Backbones that take ``frame_ms`` are registered with
:func:`takes_frame_ms`; timm's own models get no such argument. It sees `[B, C, T', F]` (time as
height, mel bins as width) like every timm backbone here and trains from scratch on a CPU in a few ms
per clip: the `quick` suite's backbone. Importing `benchmark.model.classifier` (or `benchmark.fields`' backbone
check) registers it.
"""

from __future__ import annotations

import torch
from timm.models import register_model
from torch import Tensor, nn

REFERENCE_FRAME_MS = 10.0  # the frame length the dilations below are chosen for
_FRAME_AWARE: set[str] = set()


def takes_frame_ms(entrypoint):
    """Mark a registered backbone as one whose constructor takes ``frame_ms`` (see module docstring)."""
    _FRAME_AWARE.add(entrypoint.__name__)
    return entrypoint


def backbone_kwargs(name: str, frame_ms: float) -> dict[str, float]:
    """Extra constructor arguments for backbone ``name`` given its input frames' length in ms."""
    return {"frame_ms": frame_ms} if name in _FRAME_AWARE else {}


def time_scale(frame_ms: float, reference_ms: float = REFERENCE_FRAME_MS) -> int:
    """Dilation multiplier that keeps a receptive field set for ``reference_ms`` frames (>= 1)."""
    if not frame_ms > 0:
        raise ValueError(f"frame_ms={frame_ms!r}: expected the length of one input frame in ms (> 0)")
    return max(1, round(reference_ms / frame_ms))


def _conv2d(cin: int, cout: int, stride: tuple[int, int] = (1, 1)) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _conv1d(c: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c, c, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm1d(c),
                         nn.ReLU(inplace=True))


class FreqMaxPool2(nn.Module):
    """``nn.MaxPool2d((1, 2), ceil_mode=True)`` over the last (frequency) axis, as a reshape and a max.

    The same values and gradients (an odd last bin is padded with -inf, which never wins), at about
    two thirds of the CPU time: oneDNN's pooling kernel costs a quarter of a small model's step.
    """

    def forward(self, x: Tensor) -> Tensor:  # [B, C, T, F] -> [B, C, T, ceil(F / 2)]
        if x.shape[-1] % 2:
            x = nn.functional.pad(x, (0, 1), value=float("-inf"))
        return x.unflatten(-1, (x.shape[-1] // 2, 2)).max(-1).values  # one winner per tie, as MaxPool2d


class AudioCNN(nn.Module):
    """conv blocks (frequency pooling only) -> mean over F -> dilated temporal convs -> mean+max over T -> head."""

    def __init__(self, in_chans: int = 1, num_classes: int = 1000, widths: tuple[int, ...] = (8, 16, 32),
                 dilations: tuple[int, ...] = (2, 4), stem_freq_stride: int = 2, drop_rate: float = 0.0,
                 head_init_std: float = 0.01, frame_ms: float = REFERENCE_FRAME_MS):
        super().__init__()
        self.time_scale = time_scale(frame_ms)
        if self.time_scale > 1:
            # receptive field in frames: 1 + 2 per 3x3 stem block, + 2 d per dilated conv; stretch the
            # dilations so the whole field spans time_scale times the reference's frames
            stem, temporal = 1 + 2 * len(widths), 2 * sum(dilations)
            stretch = (self.time_scale * (stem + temporal) - stem) / temporal
            dilations = tuple(max(1, round(d * stretch)) for d in dilations)
        layers, c = [], in_chans
        for i, w in enumerate(widths):
            layers += [_conv2d(c, w, (1, stem_freq_stride if i == 0 else 1)), FreqMaxPool2()]
            c = w
        self.stem = nn.Sequential(*layers)
        self.temporal = nn.Sequential(*[_conv1d(c, d) for d in dilations])
        self.num_features = 2 * c  # mean and max over time
        self.feature_channels = c  # channels of forward_features (benchmark.model.heads pools these itself)
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
@takes_frame_ms
def audiocnn_tiny(pretrained: bool = False, **kwargs) -> AudioCNN:
    """8-16-32 channels, ~13 k parameters; no pretrained weights exist (`pretrained=True` raises)."""
    if pretrained:
        raise ValueError("audiocnn_tiny has no pretrained weights; use pretrained=False "
                         "(or RunConfig.pretrained_weights with a local state_dict)")
    kwargs.pop("pretrained_cfg", None)
    kwargs.pop("pretrained_cfg_overlay", None)
    kwargs.pop("cache_dir", None)
    return AudioCNN(**kwargs)


@register_model
@takes_frame_ms
def audiocnn_wide(pretrained: bool = False, **kwargs) -> AudioCNN:
    """`audiocnn_tiny` with four dilated temporal convolutions (2, 4, 8, 16): a receptive field of 67 frames,
    670 ms at 10 ms (the tiny one's 190 ms is shorter than the resolution map's slowest motif, 448 ms, so the
    full-resolution reference could not see one whole motif where a reduction, whose frames are longer, could)."""
    return audiocnn_tiny(pretrained, dilations=(2, 4, 8, 16), **kwargs)
