"""What a suite will cost before it starts: `diffres-bench plan --suite NAME` (and the summary `study` /
`reproduce` print first). Nothing is trained and no data is read; the numbers come from the task
registry (`TaskSpec.size`, the generators' sizes), FLOP counts and a throughput table.

Per task: the points, the GB to download (hub tasks; none for embedded ones), the disk the feature caches
will take, and GPU-hours.

- Feature caches (`tasks.features`): one waveform cache per (task, fold) of 4 bytes x samples per clip
  over every split, plus one log-mel cache per (task, fold, hop, n_mels, window) of 4 bytes x T x n_mels
  per clip. `max_train_clips` does not shrink them (the whole split is cached).
- GPU-hours of a point: (3 x forward FLOPs x training clips x epochs + forward FLOPs x (validation clips x
  epochs + test clips x epochs / 2)) / throughput. Backward ≈ 2 x forward; the test split is evaluated at
  each new best validation epoch, taken as half the epochs; `epochs` is the maximum (early stopping can
  only shorten a run); feature extraction and data loading are not counted.
- Forward FLOPs (`benchmark.compute.count_flops`, the run's own rules) of front-end and backbone + head.
  Both are convolutional over time, so each is counted once per distinct module (front-end at
  `REF_FRAMES` input frames; backbone per backbone, head, input channels, classes and n_mels, at
  `REF_FRAMES_OUT` frames) and scaled linearly to the point's T and T' (within ~1 % of an exact count for
  EfficientNet-B2, tested). So `plan` takes seconds even for the paper suite.
- Throughput: `results/throughput.csv` (written by `python -m benchmark.benches.bench_throughput`), the
  achieved training FLOP/s measured per device name and backbone. For a device with no row there, the
  plan says so and assumes `ASSUMED_FLOPS_PER_S`.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.config import RunConfig
from benchmark.paths import RESULTS_DIR

THROUGHPUT_CSV = RESULTS_DIR / "throughput.csv"
# An assumption, not a measurement: EfficientNet-B2 training with AMP on an A100-class GPU reaches a few
# TFLOP/s of useful work (its depthwise convolutions keep it far below the chip's peak).
ASSUMED_FLOPS_PER_S = 5e12
REF_FRAMES = 1000  # input frames at which a front-end's FLOPs are counted, then scaled to T
REF_FRAMES_OUT = 512  # backbone input frames at which a backbone's FLOPs are counted, then scaled to T'
TEST_EVAL_SHARE = 0.5  # share of epochs at which the test split is evaluated (each new best on val)
GB = 1e9


@dataclass(frozen=True)
class TaskPlan:
    task: str
    points: int
    embedded: bool
    download_gb: float  # 0 for embedded tasks
    cache_gb: float  # feature caches (waveforms + log-mels)
    gpu_hours: float
    download: str  # how to get the data ("" for embedded tasks)


@dataclass(frozen=True)
class Plan:
    suite: str
    device: str
    flops_per_s: float
    measured: bool  # False: no row for this device in the throughput table, ASSUMED_FLOPS_PER_S used
    tasks: tuple[TaskPlan, ...]
    weights: tuple[str, ...]  # pretrained weights to fetch, as lines

    @property
    def points(self) -> int:
        return sum(t.points for t in self.tasks)

    @property
    def gpu_hours(self) -> float:
        return sum(t.gpu_hours for t in self.tasks)

    def __str__(self) -> str:
        source = (f"measured on {self.device} (results/throughput.csv)" if self.measured else
                  f"no measurement for {self.device} in results/throughput.csv: estimated from FLOPs at an "
                  f"assumed {self.flops_per_s / 1e12:g} TFLOP/s of training throughput")
        lines = [f"plan for suite {self.suite}: {self.points} points on {len(self.tasks)} tasks",
                 f"throughput: {self.flops_per_s / 1e12:.3g} TFLOP/s, {source}",
                 f"{'task':20s} {'points':>6s} {'download GB':>11s} {'cache GB':>9s} {'GPU-hours':>10s}"]
        for t in self.tasks:
            lines.append(f"{t.task:20s} {t.points:6d} {t.download_gb:11.1f} {t.cache_gb:9.1f} {t.gpu_hours:10.1f}")
        lines.append(f"{'total':20s} {self.points:6d} {sum(t.download_gb for t in self.tasks):11.1f} "
                     f"{sum(t.cache_gb for t in self.tasks):9.1f} {self.gpu_hours:10.1f}")
        lines.append("downloads:")
        lines += [f"  {t.task}: {t.download}" for t in self.tasks if not t.embedded]
        embedded = [t.task for t in self.tasks if t.embedded]
        if embedded:
            lines.append(f"  none for {', '.join(embedded)} (embedded: generated here)")
        lines += [f"  {w}" for w in self.weights]
        return "\n".join(lines)


# -------------------------------------------------------------------------------------------- FLOPs
class FlopCounter:
    """Forward FLOPs per clip of a config's front-end and backbone, counted once per distinct module."""

    def __init__(self) -> None:
        self._frontends: dict[tuple, tuple[Any, int]] = {}
        self._backbones: dict[tuple, int] = {}

    def frontend(self, cfg: RunConfig) -> tuple[Any, int]:
        """(front-end module, FLOPs at REF_FRAMES input frames)."""
        key = (cfg.frontend, cfg.reduction_rate, cfg.n_mels)
        if key not in self._frontends:
            import torch

            from benchmark.compute import count_flops
            from diffres import create_frontend

            module = create_frontend(cfg.frontend, in_t_dim=REF_FRAMES, in_f_dim=cfg.n_mels,
                                     reduction_rate=cfg.reduction_rate).eval()
            self._frontends[key] = module, count_flops(module, torch.zeros(1, REF_FRAMES, cfg.n_mels))
        return self._frontends[key]

    def backbone(self, cfg: RunConfig, in_chans: int, num_classes: int) -> int:
        """FLOPs of backbone + head at REF_FRAMES_OUT input frames."""
        key = (cfg.backbone, cfg.head, in_chans, num_classes, cfg.n_mels)
        if key not in self._backbones:
            import timm
            import torch

            from benchmark.backbones import backbone_kwargs
            from benchmark.compute import count_flops
            from benchmark.heads import get_head

            head = get_head(cfg.head)
            body = timm.create_model(cfg.backbone, pretrained=False, in_chans=in_chans,
                                     num_classes=num_classes if head.timm_classifier else 0,
                                     **backbone_kwargs(cfg.backbone, cfg.hop_ms))
            module = head.attach(body, num_classes).eval()
            self._backbones[key] = count_flops(module, torch.zeros(1, in_chans, REF_FRAMES_OUT, cfg.n_mels))
        return self._backbones[key]

    def forward(self, cfg: RunConfig, t_in: int, num_classes: int) -> float:
        frontend, frontend_flops = self.frontend(cfg)
        t_out = frontend.t_out(t_in)
        backbone = self.backbone(cfg, frontend.out_channels, num_classes)
        return frontend_flops * t_in / REF_FRAMES + backbone * t_out / REF_FRAMES_OUT


# ------------------------------------------------------------------------------------------ throughput
def load_throughput(path: Path = THROUGHPUT_CSV) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def throughput_for(device: str, backbone: str, rows: Iterable[dict[str, str]]) -> float | None:
    """Median achieved training FLOP/s of `backbone` on `device` in the table, or None."""
    values = [float(r["train_flops_per_s"]) for r in rows if r["device"] == device and r["backbone"] == backbone]
    return statistics.median(values) if values else None


def default_device() -> str:
    import torch

    from benchmark.compute import describe_device

    return describe_device("cuda") if torch.cuda.is_available() else "a GPU (none visible here)"


# ---------------------------------------------------------------------------------------------- plan
def plan_suite(suite: Any, *, device: str | None = None, throughput_csv: Path = THROUGHPUT_CSV,
               counter: FlopCounter | None = None) -> Plan:
    """The cost summary of a suite (a name, a YAML path or a loaded `Suite`)."""
    from benchmark.study.suites import load_suite
    from tasks import FeatureConfig, get_task

    suite = load_suite(suite)
    device = device or default_device()
    counter = counter or FlopCounter()
    rows = load_throughput(throughput_csv)
    backbones = sorted({cfg.backbone for cfg in suite.configs})
    rates = [throughput_for(device, b, rows) for b in backbones]
    measured = all(r is not None for r in rates)
    flops_per_s = statistics.median([r for r in rates if r is not None]) if measured else ASSUMED_FLOPS_PER_S

    by_task: dict[str, list[RunConfig]] = defaultdict(list)
    for cfg in suite.configs:
        by_task[cfg.task].append(cfg)
    plans = []
    for task, configs in by_task.items():
        spec = get_task(task)
        clips = {s: spec.clips(s) for s in ("train", "val", "test")}
        if any(n is None for n in clips.values()):
            raise ValueError(f"task {task!r} has no size in the task registry (TaskSpec.size): cannot plan it")
        seconds, waveform_keys, logmel_keys = 0.0, set(), set()
        for cfg in configs:
            features = FeatureConfig(sample_rate=spec.sample_rate, n_mels=cfg.n_mels, win_ms=cfg.win_ms,
                                     hop_ms=cfg.hop_ms)
            t_in = features.num_frames(spec.clip_seconds)
            waveform_keys.add(cfg.fold)
            logmel_keys.add((cfg.fold, t_in, cfg.n_mels, cfg.win_ms))
            flops = counter.forward(cfg, t_in, spec.num_classes)
            n_train = min(clips["train"], cfg.max_train_clips or clips["train"])
            n_val = min(clips["val"], cfg.max_eval_clips or clips["val"])
            n_test = min(clips["test"], cfg.max_eval_clips or clips["test"])
            total = flops * cfg.epochs * (3 * n_train + n_val + TEST_EVAL_SHARE * n_test)
            seconds += total / flops_per_s
        all_clips = sum(clips.values())
        samples = round(spec.clip_seconds * spec.sample_rate)
        cache = 4 * all_clips * (samples * len(waveform_keys) + sum(t * f for _, t, f, _ in logmel_keys))
        plans.append(TaskPlan(task=task, points=len(configs), embedded=spec.is_embedded,
                              download_gb=spec.download_gb, cache_gb=cache / GB, gpu_hours=seconds / 3600,
                              download=_download_line(spec)))
    return Plan(suite=suite.name, device=device, flops_per_s=flops_per_s, measured=measured,
                tasks=tuple(plans), weights=tuple(_weights_lines(suite.configs)))


def _download_line(spec: Any) -> str:
    if spec.is_embedded:
        return ""
    src, note = spec.parquet, spec.size.note if spec.size else ""
    if src.repo is None:
        return f"~{spec.download_gb:g} GB, local copy only ({src.note}); see docs/tasks.md [{note}]"
    return f"~{spec.download_gb:g} GB: `{src.download_command(f'<dir>/{spec.name}')}` [{note}]"


def _weights_lines(configs: Iterable[RunConfig]) -> list[str]:
    from benchmark.pretrained import IMAGENET, download_command, is_cached

    lines = []
    for backbone in sorted({cfg.backbone for cfg in configs if cfg.pretrained == IMAGENET}):
        state = "cached" if is_cached(backbone) else f"not cached: `{download_command(backbone)}`"
        lines.append(f"pretrained {backbone} (timm ImageNet weights, < 0.1 GB): {state}")
    return lines
