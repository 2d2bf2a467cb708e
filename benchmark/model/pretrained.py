"""Initial backbone weights (`RunConfig.pretrained`), always through timm's own pretrained machinery.

- `none`: timm's fresh initialisation (seeded by the run's seed).
- `imagenet`: `timm.create_model(name, pretrained=True, in_chans=C)`: the weights of the model's default
  pretrained tag (EfficientNet-B2: `timm/efficientnet_b2.ra_in1k`, ImageNet-1k), fetched by
  huggingface_hub into its cache (`HF_HUB_CACHE`, by default ~/.cache/huggingface/hub) on first use.
- a path: the same call with `pretrained_cfg_overlay=dict(file=PATH)`: a state dict saved by
  `torch.save(model.state_dict())` (or safetensors) of the same timm architecture, read from disk.

Either way timm adapts what does not fit, and the run logs how (MLflow tag `pretrained_stem`):
- the stem: the ImageNet stem has 3 input channels. DiffRes gives 3 channels (mean, max, resolution
  encoding), which the paper fed into it as they are; for a 1-channel front-end (`spec`, the pooling
  baselines) timm's `adapt_input_conv` sums the RGB filters, for 2 channels it repeats them and keeps the
  first two, scaled by 3/2 (so a constant input gives the same activation as on an RGB image);
- the classifier: a task's class count differs from ImageNet's 1000, so timm leaves the head at its
  fresh initialisation (with the attention head the timm classifier is not used at all).

`RunConfig.pretrained_weights` (a local state dict, loaded by `benchmark.model.classifier.load_backbone_weights`
with its own shape-tolerant rules) predates this field and is kept unchanged for the configs that use
it; a new config gives the file as `pretrained=PATH` instead. The two cannot be set together.

`check_pretrained(configs)` runs before a suite starts (beside the data check): with `imagenet` and the
weights neither cached nor reachable it fails at once with the download command and the cache location.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

NONE, IMAGENET = "none", "imagenet"
_HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's load_state_dict_from_hf tries, in order


class PretrainedUnavailable(FileNotFoundError):
    """Pretrained weights a run needs are neither on disk nor downloadable from here."""


def _pretrained_cfg(backbone: str) -> Any:
    import timm.models

    import benchmark.model.backbones  # noqa: F401  (registers the repo's own backbones in timm)

    return timm.models.get_pretrained_cfg(backbone)


def pretrained_problem(backbone: str, pretrained: str) -> str | None:
    """None when `pretrained` can initialise `backbone`, else what is wrong (for the config's message)."""
    if pretrained == NONE:
        return None
    cfg = _pretrained_cfg(backbone)
    if cfg is None or not cfg.first_conv:
        return (f"'none' for backbone={backbone!r}: timm has no pretrained configuration for it "
                f"(pretrained weights need a timm model such as 'efficientnet_b2')")
    if pretrained == IMAGENET and not (cfg.hf_hub_id or cfg.url):
        return f"a file path for backbone={backbone!r}: timm knows no download location for its weights"
    return None


def timm_kwargs(pretrained: str) -> dict[str, Any]:
    """`timm.create_model` arguments for `RunConfig.pretrained`."""
    if pretrained == NONE:
        return {"pretrained": False}
    if pretrained == IMAGENET:
        return {"pretrained": True}
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise PretrainedUnavailable(f"RunConfig.pretrained={pretrained!r}: no such file (expected a state dict "
                                    f"of the backbone saved with torch.save or safetensors)")
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}


def stem_adaptation(pretrained: str, in_chans: int) -> str:
    """How the 3-channel pretrained stem meets `in_chans` input channels (timm's `adapt_input_conv`)."""
    if pretrained == NONE:
        return "none (fresh initialisation)"
    if in_chans == 3:
        return "3-channel stem used as is"
    if in_chans == 1:
        return "RGB filters summed into 1 channel (timm adapt_input_conv)"
    return (f"RGB filters repeated to {in_chans} channels, scaled by 3/{in_chans} "
            f"(timm adapt_input_conv)")


def hub_location(backbone: str) -> tuple[str, str]:
    """(hub repo, cache directory) of `backbone`'s default pretrained weights."""
    from huggingface_hub import constants

    cfg = _pretrained_cfg(backbone)
    return cfg.hf_hub_id, constants.HF_HUB_CACHE


def download_command(backbone: str) -> str:
    repo, _ = hub_location(backbone)
    return f"hf download {repo} {_HF_FILES[0]}"


def is_cached(backbone: str, cache_dir: str | os.PathLike | None = None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    repo, default_cache = hub_location(backbone)
    return any(isinstance(try_to_load_from_cache(repo, name, cache_dir=cache_dir or default_cache), str)
               for name in _HF_FILES)


def check_pretrained(configs: Iterable[Any], *, cache_dir: str | os.PathLike | None = None,
                     online: bool | None = None) -> None:
    """Fail before anything trains when a config's initial weights cannot be had.

    `online`: whether the hub is reachable; None asks (the TCP check the task-data check uses).
    """
    needed = sorted({(cfg.backbone, cfg.pretrained) for cfg in configs if cfg.pretrained != NONE})
    missing = []
    for backbone, pretrained in needed:
        if pretrained != IMAGENET:
            timm_kwargs(pretrained)  # raises for a missing file
        elif not is_cached(backbone, cache_dir):
            missing.append(backbone)
    if not missing:
        return
    if online is None:
        from tasks.data import hub_offline_reason

        reason = hub_offline_reason()
        online = reason is None
    else:
        reason = None if online else "offline"
    if online:
        return  # timm downloads them on first use
    cache = Path(cache_dir) if cache_dir is not None else Path(hub_location(missing[0])[1])
    commands = "; ".join(f"`{download_command(b)}`" for b in missing)
    raise PretrainedUnavailable(
        f"pretrained='imagenet' needs the timm weights of {', '.join(missing)} and they are not in the "
        f"huggingface_hub cache {cache}, and the hub is unavailable ({reason}). On a connected machine run "
        f"{commands} and copy {cache} here (or point HF_HUB_CACHE / HF_HOME at a copy)")
