"""Classifier = front-end + timm backbone: shapes for every front-end, local weights only."""

from __future__ import annotations

import pytest
import timm
import torch

from benchmark.config import RunConfig
from benchmark.model.classifier import Classifier, build_model
from diffres import list_frontends

T_IN, N_MELS, CLASSES = 96, 32, 7


def cfg_for(frontend: str, **kw) -> RunConfig:
    delta = 0.0 if frontend == "spec" else 0.5
    return RunConfig(task="toy-transients", frontend=frontend, reduction_rate=delta, n_mels=N_MELS, freq_mask=4, **kw)


@pytest.mark.parametrize("frontend", list_frontends())
def test_every_frontend_feeds_the_backbone(frontend):
    torch.manual_seed(0)
    model = build_model(cfg_for(frontend), num_classes=CLASSES, t_in=T_IN)
    assert isinstance(model, Classifier)
    wave = 0.1 * torch.randn(3, (T_IN - 1) * 160)  # [B, N]: T_IN frames at the 10 ms hop, 16 kHz
    logits, out = model(wave)  # the mel is the model's first stage
    assert logits.shape == (3, CLASSES)
    c, t_out = model.frontend.out_channels, model.frontend.t_out(T_IN)
    assert out.features.shape == (3, c, t_out, N_MELS)
    assert out.aux_loss.dim() == 0
    (logits.sum() + out.aux_loss).backward()  # the whole model trains end to end


def test_local_weights_are_loaded_without_the_hub(tmp_path):
    torch.manual_seed(0)
    source = build_model(cfg_for("diffres"), num_classes=CLASSES, t_in=T_IN)
    path = tmp_path / "backbone.pt"
    torch.save(source.backbone.state_dict(), path)
    torch.manual_seed(1)
    loaded = build_model(cfg_for("diffres", pretrained_weights=str(path)), num_classes=CLASSES, t_in=T_IN)
    for name, value in source.backbone.state_dict().items():
        assert torch.equal(value, loaded.backbone.state_dict()[name]), name


def test_imagenet_style_weights_fit_another_head_and_stem(tmp_path):
    """A 3-channel, 1000-class state_dict loads into a 1-channel, 7-class backbone (head stays fresh)."""
    imagenet = timm.create_model("mobilenetv3_small_050", pretrained=False)
    path = tmp_path / "imagenet.pt"
    torch.save(imagenet.state_dict(), path)
    model = build_model(cfg_for("avgpool", backbone="mobilenetv3_small_050", pretrained_weights=str(path)),
                        num_classes=CLASSES, t_in=T_IN)
    stem = model.backbone.conv_stem.weight
    assert stem.shape[1] == 1
    assert torch.allclose(stem, imagenet.conv_stem.weight.sum(1, keepdim=True))
    assert model.backbone.get_classifier().out_features == CLASSES


def test_missing_or_bad_weights_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained_weights=.*nope.pt"):
        build_model(cfg_for("spec", pretrained_weights=str(tmp_path / "nope.pt")), num_classes=2, t_in=T_IN)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        build_model(cfg_for("spec", pretrained_weights=str(bad)), num_classes=2, t_in=T_IN)
