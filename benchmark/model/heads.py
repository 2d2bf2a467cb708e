"""Classifier heads on top of a timm backbone (`RunConfig.head`), one registry entry each.

- `linear`: timm's own global pooling + linear classifier (the backbone as timm builds it with
  `num_classes`): what every run used before this field existed.
- `attention`: PSLA's multi-head attention pooling over time (Gong et al. 2021, "PSLA: Improving Audio
  Tagging with Pretraining, Sampling, Labeling, and Aggregation", `MHeadAttention`; 4 heads in the
  DiffRes authors' code). The backbone is built without a classifier; its feature map
  `[B, D, T'', F'']` is averaged over frequency (PSLA's `AvgPool2d((4, 1))` over the 4 frequency rows
  EfficientNet leaves of 128 mel bins), then per head h and class k two 1x1 convolutions give an
  attention a[h,k,t] = sigmoid(.) and a class probability c[h,k,t] = sigmoid(.) per time step;
  p[k] = sum_h w_h sum_t c[h,k,t] a[h,k,t] / sum_t a[h,k,t], with learnable head weights w (1/H at
  start). Its outputs are probabilities of independent classes (multi-label, as PSLA's BCE on them).

Heads return logits like every backbone here, so the trainer and the loss never branch on the head:
the attention head returns logit(p) with p clamped to [1e-7, 1 - 1e-7] (PSLA's epsilon), so that
BCE-with-logits on it is PSLA's BCE on p and sigmoid(logit) gives p back at evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from diffres.registry import Registry

EPS = 1e-7  # PSLA's clamp of attention weights and output probabilities
PAPER_HEADS = 4  # attention heads in the DiffRes authors' code


@dataclass(frozen=True)
class Head:
    name: str
    timm_classifier: bool  # True: timm builds the classifier (num_classes); False: the body has none
    attach: Callable[[nn.Module, int], nn.Module]  # (timm body, num_classes) -> backbone returning logits
    description: str


HEADS: Registry[Head] = Registry("head", "heads")  # the info record carries its `attach`


def register_head(name: str, *, timm_classifier: bool, description: str):
    def decorator(fn: Callable[[nn.Module, int], nn.Module]) -> Callable[[nn.Module, int], nn.Module]:
        HEADS.add(name, Head(name, timm_classifier, fn, description))
        return fn

    return decorator


def get_head(name: str) -> Head:
    return HEADS.info(name)


def list_heads() -> list[str]:
    return HEADS.names()


class AttentionPool(nn.Module):
    """Feature map [B, D, T, F] -> logits [B, K] of PSLA's multi-head attention pooling over time."""

    def __init__(self, in_features: int, num_classes: int, n_heads: int = PAPER_HEADS):
        super().__init__()
        self.n_heads, self.num_classes = n_heads, num_classes
        self.att = nn.Conv1d(in_features, n_heads * num_classes, 1)  # all heads' 1x1 convs at once
        self.cla = nn.Conv1d(in_features, n_heads * num_classes, 1)
        self.head_weight = nn.Parameter(torch.full((n_heads,), 1.0 / n_heads))
        for conv in (self.att, self.cla):  # PSLA's init_layer
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def probabilities(self, fmap: Tensor) -> Tensor:
        """[B, D, T, F] -> class probabilities [B, K]."""
        h = fmap.mean(dim=3)  # [B, D, T]
        shape = (h.shape[0], self.n_heads, self.num_classes, h.shape[2])
        att = self.att(h).float().sigmoid().clamp(EPS, 1.0 - EPS).view(shape)  # [B, H, K, T]
        cla = self.cla(h).float().sigmoid().view(shape)
        per_head = (att * cla).sum(-1) / att.sum(-1)  # [B, H, K]
        return (per_head * self.head_weight[:, None]).sum(1)  # [B, K]

    def forward(self, fmap: Tensor) -> Tensor:
        return torch.logit(self.probabilities(fmap).clamp(EPS, 1.0 - EPS))


class PooledBackbone(nn.Module):
    """A timm body without classifier, then a pooling head: [B, C, T', F] -> logits [B, K]."""

    def __init__(self, body: nn.Module, head: nn.Module):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body.forward_features(x))


def feature_channels(body: nn.Module) -> int:
    """Channels of `body.forward_features` (timm's `num_features`; audiocnn_tiny says it explicitly)."""
    return int(getattr(body, "feature_channels", body.num_features))


@register_head("linear", timm_classifier=True, description="timm's global pooling + linear classifier")
def linear(body: nn.Module, num_classes: int) -> nn.Module:
    return body


@register_head("attention", timm_classifier=False,
               description=f"PSLA's {PAPER_HEADS}-head attention pooling over time, sigmoid outputs")
def attention(body: nn.Module, num_classes: int) -> nn.Module:
    return PooledBackbone(body, AttentionPool(feature_channels(body), num_classes, PAPER_HEADS))
