"""What a suite will cost before it starts: `diffres-bench plan --suite NAME` (and the summary `study` /
`reproduce` print first). Nothing is trained and no audio is read; the numbers come from the task registry
(`TaskSpec.size`, the generators' sizes), FLOP counts and two tables of measured rates.

Per task: the points, the GB to download (hub tasks; none for embedded ones) and whether the local copy is
there, the disk of its waveform cache, the compute hours, the loader hours, which of the two bounds it,
and the hours it takes (per point the larger of the two: the loader reads ahead while the device computes).

- Cache (`tasks.wavecache`): one int16 waveform cache per task, 2 bytes x samples per clip over every clip;
  every hop, n_mels, window, filterbank and fold reads it. `max_train_clips` does not shrink it.
- Clips a point processes: epochs x (train clips + validation clips + test clips / 2): the test split is
  evaluated at each new best validation epoch, taken as half the epochs; `epochs` is the maximum (early
  stopping can only shorten a run).
- Compute of a point: (3 x forward FLOPs x training clips x epochs + forward FLOPs x evaluation clips) /
  training FLOP/s (backward ≈ 2 x forward), plus the device-side features (the mel stage at the point's
  hop) at their measured ms per clip (`results/bench_loader.csv` rows `features` of the device) for every
  clip processed; without such a row the features are not counted and the plan says so.
- Forward FLOPs (`benchmark.tracking.compute.count_flops`, the run's own rules) of front-end and backbone + head.
  Both are convolutional over time, so each is counted once per distinct module (front-end at
  `REF_FRAMES` input frames; backbone per backbone, head, input channels, classes and n_mels, at
  `REF_FRAMES_OUT` frames) and scaled linearly to the point's T and T' (within ~1 % of an exact count for
  EfficientNet-B2, tested). So `plan` takes seconds even for the paper suite.
- Training FLOP/s: `results/throughput.csv` (`python -m benchmark.benches.bench_throughput`), measured per
  device name and backbone. For a device with no row there, the plan says so and assumes `ASSUMED_FLOPS_PER_S`.
- Loader of a point: clips processed / (clips/s per worker at the task's clip length x workers), from the
  `loader` rows of `results/bench_loader.csv` (`python -m benchmark.benches.bench_loader`): the row at the
  stated worker count where measured, else the 1-worker row times the workers. A clip length with no row
  is scaled from the nearest measured one by its bytes. `--loader-workers` (default: the loader's default
  on CUDA, `benchmark.training.loader.DEFAULT_CUDA_WORKERS`).
"""

from __future__ import annotations

import csv
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.config import RunConfig
from benchmark.paths import RESULTS_DIR

THROUGHPUT_CSV = RESULTS_DIR / "throughput.csv"
LOADER_CSV = RESULTS_DIR / "bench_loader.csv"
# An assumption, not a measurement: EfficientNet-B2 training with AMP on an A100-class GPU reaches a few
# TFLOP/s of useful work (its depthwise convolutions keep it far below the chip's peak).
ASSUMED_FLOPS_PER_S = 5e12
REF_FRAMES = 1000  # input frames at which a front-end's FLOPs are counted, then scaled to T
REF_FRAMES_OUT = 512  # backbone input frames at which a backbone's FLOPs are counted, then scaled to T'
TEST_EVAL_SHARE = 0.5  # share of epochs at which the test split is evaluated (each new best on val)
CACHE_BYTES_PER_SAMPLE = 2  # int16 (tasks.wavecache)
GB = 1e9


@dataclass(frozen=True)
class TaskPlan:
    task: str
    points: int
    embedded: bool  # nothing to download: an embedded task or a user's corpus (TaskSpec.is_local)
    download_gb: float  # 0 for embedded tasks
    cache_gb: float  # the task's waveform cache
    compute_hours: float  # on the device: model FLOPs (and the features, where measured)
    loader_hours: float | None  # reading the clips at the stated workers; None: no loader measurement
    hours: float  # sum over points of the larger of the two
    download: str  # how to get the data ("" for embedded tasks)
    local: str  # hub tasks: where the local copy is and whether it is complete ("" for embedded tasks)

    @property
    def bound(self) -> str:
        if self.loader_hours is None:
            return "?"
        return "loader" if self.loader_hours > self.compute_hours else "device"

    @property
    def gpu_hours(self) -> float:
        return self.compute_hours


@dataclass(frozen=True)
class Plan:
    suite: str
    device: str
    flops_per_s: float
    measured: bool  # False: no row for this device in the throughput table, ASSUMED_FLOPS_PER_S used
    tasks: tuple[TaskPlan, ...]
    weights: tuple[str, ...]  # pretrained weights to fetch, as lines
    loader_workers: int = 0
    notes: tuple[str, ...] = ()  # where the loader and feature rates came from, or that none did

    @property
    def points(self) -> int:
        return sum(t.points for t in self.tasks)

    @property
    def gpu_hours(self) -> float:
        return sum(t.compute_hours for t in self.tasks)

    @property
    def hours(self) -> float:
        return sum(t.hours for t in self.tasks)

    def __str__(self) -> str:
        source = (f"measured on {self.device} (results/throughput.csv)" if self.measured else
                  f"no measurement for {self.device} in results/throughput.csv: estimated from FLOPs at an "
                  f"assumed {self.flops_per_s / 1e12:g} TFLOP/s of training throughput")
        w = max([20, *(len(t.task) for t in self.tasks)])  # the task column fits the longest name
        lines = [f"plan for suite {self.suite}: {self.points} points on {len(self.tasks)} tasks",
                 f"throughput: {self.flops_per_s / 1e12:.3g} TFLOP/s, {source}", *self.notes,
                 f"{'task':{w}s} {'points':>6s} {'download GB':>11s} {'cache GB':>9s} {'GPU-hours':>10s} "
                 f"{'loader h':>9s} {'bound':>6s} {'hours':>8s}"]
        for t in self.tasks:
            loader = f"{t.loader_hours:9.1f}" if t.loader_hours is not None else f"{'?':>9s}"
            lines.append(f"{t.task:{w}s} {t.points:6d} {t.download_gb:11.1f} {t.cache_gb:9.1f} "
                         f"{t.compute_hours:10.1f} {loader} {t.bound:>6s} {t.hours:8.1f}")
        known = [t.loader_hours for t in self.tasks if t.loader_hours is not None]
        loader_total = f"{sum(known):9.1f}" if len(known) == len(self.tasks) else f"{'?':>9s}"
        lines.append(f"{'total':{w}s} {self.points:6d} {sum(t.download_gb for t in self.tasks):11.1f} "
                     f"{sum(t.cache_gb for t in self.tasks):9.1f} {self.gpu_hours:10.1f} {loader_total} "
                     f"{'':>6s} {self.hours:8.1f}")
        lines.append("downloads:")
        lines += [f"  {t.task}: {t.download}\n    local copy: {t.local}" for t in self.tasks if not t.embedded]
        embedded = [t.task for t in self.tasks if t.embedded]
        if embedded:
            lines.append(f"  none for {', '.join(embedded)} (embedded tasks are generated here; your corpus is read "
                         f"in place)")
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

            from benchmark.tracking.compute import count_flops
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

            from benchmark.model.backbones import backbone_kwargs
            from benchmark.model.heads import get_head
            from benchmark.tracking.compute import count_flops

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


# ------------------------------------------------------------------------------------------ rates
def load_rows(path: Path) -> list[dict[str, str]]:
    if not Path(path).is_file():
        return []
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def load_throughput(path: Path = THROUGHPUT_CSV) -> list[dict[str, str]]:
    return load_rows(path)


def throughput_for(device: str, backbone: str, rows: Iterable[dict[str, str]]) -> float | None:
    """Median achieved training FLOP/s of `backbone` on `device` in the table, or None."""
    values = [float(r["train_flops_per_s"]) for r in rows
              if r["device"] == device and r["backbone"] == backbone and r.get("train_flops_per_s")]  # not "oom"
    return statistics.median(values) if values else None


class LoaderRates:
    """Clips/s of the loader and ms per clip of the device-side features, from results/bench_loader.csv."""

    def __init__(self, rows: list[dict[str, str]], device: str, workers: int):
        self.device, self.workers = device, workers
        self.loader = [r for r in rows if r["kind"] == "loader"]
        self.features = [r for r in rows if r["kind"] == "features" and r["device"] == device]

    def clips_per_s(self, clip_s: float) -> float | None:
        """The loader's clips/s at `self.workers` workers for clips of `clip_s` seconds (None: no row)."""
        if not self.loader or self.workers < 1:
            return None
        lengths = sorted({float(r["clip_s"]) for r in self.loader})
        nearest = min(lengths, key=lambda c: abs(c - clip_s))
        at = [r for r in self.loader if float(r["clip_s"]) == nearest]
        same = [float(r["clips_per_s"]) for r in at if int(r["workers"]) == self.workers]
        one = [float(r["clips_per_s"]) for r in at if int(r["workers"]) == 1]
        rate = statistics.median(same) if same else statistics.median(one) * self.workers if one else None
        return None if rate is None else rate * nearest / clip_s  # the same bytes/s at another clip length

    def feature_seconds(self, clip_s: float, hop_ms: float) -> float | None:
        """Device seconds of the mel stage per clip (None: not measured on this device)."""
        values = [float(r["ms_per_clip"]) / 1e3 for r in self.features
                  if float(r["clip_s"]) == clip_s and float(r["hop_ms"]) == hop_ms]
        return statistics.median(values) if values else None

    def notes(self) -> list[str]:
        if not self.loader:
            loader = "loader: no measurement in results/bench_loader.csv (`python -m benchmark.benches.bench_loader`)"
        else:
            machines = "; ".join(sorted({r["device"] for r in self.loader}))
            loader = (f"loader: {self.workers} worker(s), clips/s measured on {machines} "
                      "(results/bench_loader.csv); a GPU host's cores may be faster or slower")
        features = (f"features: the mel stage's measured ms per clip on {self.device} (results/bench_loader.csv)"
                    if self.features else f"features: not measured on {self.device}, not counted in GPU-hours")
        return [loader, features]


def default_device() -> str:
    import torch

    from benchmark.tracking.compute import describe_device

    return describe_device("cuda") if torch.cuda.is_available() else "a GPU (none visible here)"


def default_loader_workers() -> int:
    """What a CUDA run will use: $DIFFRES_LOADER_WORKERS, else the default (a bad value is the run's error)."""
    from benchmark.paths import LOADER_WORKERS_ENV, env_number
    from benchmark.training.loader import DEFAULT_CUDA_WORKERS

    return int(env_number(LOADER_WORKERS_ENV, DEFAULT_CUDA_WORKERS, "loader worker processes", integer=True))


# ---------------------------------------------------------------------------------------------- plan
def plan_suite(suite: Any, *, device: str | None = None, throughput_csv: Path = THROUGHPUT_CSV,
               loader_csv: Path = LOADER_CSV, loader_workers: int | None = None,
               data_dir: str | os.PathLike | None = None, counter: FlopCounter | None = None) -> Plan:
    """The cost summary of a suite (a name, a YAML path or a loaded `Suite`)."""
    from benchmark.study.suites import load_suite
    from tasks import get_task
    from tasks.data import local_copy_status

    suite = load_suite(suite)
    device = device or default_device()
    counter = counter or FlopCounter()
    rows = load_throughput(throughput_csv)
    backbones = sorted({cfg.backbone for cfg in suite.configs})
    measured_rates = [throughput_for(device, b, rows) for b in backbones]
    measured = all(r is not None for r in measured_rates)
    flops_per_s = statistics.median([r for r in measured_rates if r is not None]) if measured else ASSUMED_FLOPS_PER_S
    workers = default_loader_workers() if loader_workers is None else loader_workers
    rates = LoaderRates(load_rows(loader_csv), device, workers)

    by_task: dict[str, list[RunConfig]] = defaultdict(list)
    for cfg in suite.configs:
        by_task[cfg.task].append(cfg)
    plans = []
    for task, configs in by_task.items():
        spec = get_task(task)
        clips = {s: spec.clips(s) for s in ("train", "val", "test")}
        if any(n is None for n in clips.values()):
            raise ValueError(f"task {task!r} has no size in the task registry (TaskSpec.size): cannot plan it")
        read_rate = rates.clips_per_s(spec.clip_seconds)
        compute_s = loader_s = hours_s = 0.0
        for cfg in configs:
            features = cfg.feature_config(spec)
            t_in = features.num_frames(spec.clip_seconds)
            flops = counter.forward(cfg, t_in, spec.num_classes)
            n_train = min(clips["train"], cfg.max_train_clips or clips["train"])
            n_eval = min(clips["val"], cfg.max_eval_clips or clips["val"]) + TEST_EVAL_SHARE * min(
                clips["test"], cfg.max_eval_clips or clips["test"])
            processed = cfg.epochs * (n_train + n_eval)
            point = flops * cfg.epochs * (3 * n_train + n_eval) / flops_per_s
            point += processed * (rates.feature_seconds(spec.clip_seconds, cfg.hop_ms) or 0.0)
            read = processed / read_rate if read_rate else 0.0
            compute_s, loader_s, hours_s = compute_s + point, loader_s + read, hours_s + max(point, read)
        samples = round(spec.clip_seconds * spec.sample_rate)
        cache = CACHE_BYTES_PER_SAMPLE * samples * sum(clips.values())
        plans.append(TaskPlan(task=task, points=len(configs), embedded=spec.is_local,
                              download_gb=spec.download_gb, cache_gb=cache / GB, compute_hours=compute_s / 3600,
                              loader_hours=loader_s / 3600 if read_rate else None, hours=hours_s / 3600,
                              download=_download_line(spec),
                              local="" if spec.is_local else local_copy_status(spec, data_dir)))
    return Plan(suite=suite.name, device=device, flops_per_s=flops_per_s, measured=measured,
                tasks=tuple(plans), weights=tuple(_weights_lines(suite.configs)), loader_workers=workers,
                notes=tuple(rates.notes()))


def _download_line(spec: Any) -> str:
    if spec.is_local:
        return ""
    src, note = spec.parquet, spec.size.note if spec.size else ""
    if src.repo is None:
        return f"~{spec.download_gb:g} GB, local copy only ({src.note}); see docs/tasks.md [{note}]"
    return f"~{spec.download_gb:g} GB: `{src.download_command(f'<dir>/{spec.name}')}` [{note}]"


def _weights_lines(configs: Iterable[RunConfig]) -> list[str]:
    from benchmark.model.pretrained import IMAGENET, download_command, is_cached

    lines = []
    for backbone in sorted({cfg.backbone for cfg in configs if cfg.pretrained == IMAGENET}):
        state = "cached" if is_cached(backbone) else f"not cached: `{download_command(backbone)}`"
        lines.append(f"pretrained {backbone} (timm ImageNet weights, < 0.1 GB): {state}")
    return lines
