"""`diffres-bench plan`: points, downloads (hub tasks only) and local copies, waveform cache disk, GPU-hours
from FLOPs and the throughput table, loader hours from the loader table and which bounds a task; and the
paper suite's configs resolved per task."""

from __future__ import annotations

import csv

import pytest
import torch

from benchmark.cli import main
from benchmark.config import RunConfig
from benchmark.model.classifier import build_model
from benchmark.plan import ASSUMED_FLOPS_PER_S, FlopCounter, plan_suite
from benchmark.study import load_suite
from benchmark.tracking.compute import count_flops
from tasks import get_task
from tasks.data import local_copy_status


@pytest.fixture(scope="module")
def counter():
    return FlopCounter()  # shared: every distinct module is counted once for all the plans below


@pytest.mark.parametrize("name", ["paper", "small", "quick"])
def test_plan_numbers_are_positive_and_downloads_are_listed_for_hub_tasks_only(name, counter):
    plan = plan_suite(name, device="nowhere", counter=counter)
    assert plan.points == len(load_suite(name).configs) > 0
    assert not plan.measured and plan.flops_per_s == ASSUMED_FLOPS_PER_S
    for task in plan.tasks:
        assert task.points > 0 and task.cache_gb > 0 and task.gpu_hours > 0, task
        if task.embedded:
            assert task.download_gb == 0 and task.download == ""
        else:
            assert task.download_gb > 0 and "GB" in task.download
    text = str(plan)
    assert "no measurement for nowhere" in text
    if name == "quick":
        assert "none for toy-rhythm" in text and "hf download" not in text
    else:
        assert "hf download --repo-type dataset ashraq/esc50" in text and "efficientnet_b2" in text


def test_the_paper_suite_is_the_biggest_and_the_small_one_fits_a_gpu_hour(counter):
    paper, small = (plan_suite(n, device="nowhere", counter=counter) for n in ("paper", "small"))
    assert paper.gpu_hours > 50 * small.gpu_hours and small.gpu_hours <= 1.0
    assert {t.task for t in paper.tasks} == {"audioset", "fsd50k", "esc50", "speechcommands", "nsynth-instrument"}


def test_a_measured_device_uses_its_row_of_the_throughput_table(tmp_path, counter):
    path = tmp_path / "throughput.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["device", "backbone", "train_flops_per_s"])
        writer.writeheader()
        writer.writerow({"device": "cuda:Test GPU", "backbone": "efficientnet_b2", "train_flops_per_s": "1e13"})
    fast = plan_suite("small", device="cuda:Test GPU", throughput_csv=path, counter=counter)
    slow = plan_suite("small", device="other", throughput_csv=path, counter=counter)
    assert fast.measured and fast.flops_per_s == 1e13 and "measured on cuda:Test GPU" in str(fast)
    assert fast.gpu_hours == pytest.approx(slow.gpu_hours * ASSUMED_FLOPS_PER_S / 1e13)


def test_the_paper_suite_caches_waveforms_once_per_task(counter):
    paper = plan_suite("paper", device="nowhere", counter=counter)
    for task in paper.tasks:  # int16 at 16 kHz, every clip once, whatever the hops and folds
        spec = get_task(task.task)
        clips = sum(spec.clips(s) for s in ("train", "val", "test"))
        assert task.cache_gb == pytest.approx(2 * 16000 * spec.clip_seconds * clips / 1e9)
    assert sum(t.cache_gb for t in paper.tasks) <= 120  # was 3,274 GB with a log-mel cache per hop


def _loader_table(path, rate_per_worker: float, device: str = "cuda:Test GPU", ms_per_clip: float = 0.0):
    fields = ["kind", "task", "clip_s", "hop_ms", "workers", "clips_per_s", "ms_per_clip", "device"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerow({"kind": "loader", "task": "esc50", "clip_s": 5.0, "hop_ms": "", "workers": 1,
                         "clips_per_s": rate_per_worker, "ms_per_clip": "", "device": "cpu:x"})
        for hop in (10.0, 5.0, 2.0, 1.0):
            writer.writerow({"kind": "features", "task": "esc50", "clip_s": 5.0, "hop_ms": hop, "workers": "",
                             "clips_per_s": "", "ms_per_clip": ms_per_clip, "device": device})


def test_the_loader_table_gives_loader_hours_and_the_bound(tmp_path, counter):
    slow, fast, costly = (tmp_path / f"{n}.csv" for n in ("slow", "fast", "costly"))
    _loader_table(slow, 1.0)
    _loader_table(fast, 1e6)
    _loader_table(costly, 1e6, ms_per_clip=10.0)
    plans = {name: plan_suite("small", device="cuda:Test GPU", loader_csv=path, loader_workers=2, counter=counter)
             for name, path in (("slow", slow), ("fast", fast), ("costly", costly))}
    esc = {name: next(t for t in p.tasks if t.task == "esc50") for name, p in plans.items()}
    assert esc["slow"].bound == "loader" and esc["fast"].bound == "device"
    assert esc["slow"].loader_hours == pytest.approx(esc["fast"].loader_hours * 1e6)
    assert esc["slow"].hours == pytest.approx(esc["slow"].loader_hours)  # per point the larger of the two
    # speech commands' 1 s clips: no row at 1 s, scaled from the 5 s row by bytes (5x the clips/s)
    sc = {name: next(t for t in p.tasks if t.task == "speechcommands") for name, p in plans.items()}
    assert sc["slow"].loader_hours is not None and sc["slow"].bound == "loader"
    # the features' measured device time is compute: 10 ms per clip processed
    cfgs = [c for c in load_suite("small").configs if c.task == "esc50"]
    processed = sum(c.epochs * (1200 + 400 + 0.5 * 400) for c in cfgs)
    assert esc["costly"].compute_hours - esc["fast"].compute_hours == pytest.approx(processed * 0.01 / 3600)
    assert "2 worker(s)" in str(plans["slow"]) and "features: the mel stage's measured" in str(plans["costly"])
    none = plan_suite("small", device="cuda:Test GPU", loader_csv=tmp_path / "missing.csv", counter=counter)
    assert all(t.loader_hours is None and t.bound == "?" for t in none.tasks)
    assert "loader: no measurement" in str(none)


def test_the_local_copy_of_a_hub_task_is_checked_without_the_hub(tmp_path):
    spec = get_task("speechcommands")
    assert local_copy_status(spec, tmp_path).startswith(f"not found at {tmp_path / 'speechcommands'}")
    for split in ("train", "validation"):
        (tmp_path / "speechcommands/v0.02").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"speechcommands/v0.02/{split}-00000.parquet").write_bytes(b"x" * 10)
    assert "incomplete" in local_copy_status(spec, tmp_path) and "v0.02/test-*.parquet" in local_copy_status(
        spec, tmp_path)
    (tmp_path / "speechcommands/v0.02/test-00000.parquet").write_bytes(b"x")
    assert local_copy_status(spec, tmp_path).startswith(f"complete at {tmp_path / 'speechcommands'}: 3 files")


def test_the_plan_command_takes_a_data_dir(tmp_path, capsys):
    assert main(["plan", "--suite", "small", "--device", "nowhere", "--data-dir", str(tmp_path),
                 "--loader-workers", "3", "--no-cpu-estimate"]) == 0
    out = capsys.readouterr().out
    assert f"local copy: not found at {tmp_path / 'esc50'}" in out and "loader h" in out


def test_scaled_flops_are_close_to_an_exact_count(counter):
    cfg = RunConfig.for_task("esc50", fold=1, recipe="paper", pretrained="none", frontend="diffres",
                             reduction_rate=0.25)
    model = build_model(cfg, num_classes=50, t_in=501).eval()
    x = torch.randn(1, 501, 128)
    exact = count_flops(model.frontend, x) + count_flops(model.backbone, model.frontend(x).features)
    assert counter.forward(cfg, 501, 50) == pytest.approx(exact, rel=0.03)


def test_the_plan_command_prints_the_summary(capsys):
    assert main(["plan", "--suite", "quick", "--device", "nowhere", "--no-cpu-estimate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan for suite quick: 229 points") and "GPU-hours" in out


# ------------------------------------------------------------------------ the paper suite, per task
PAPER = {  # task -> (balanced sampling, weight averaging, warm-up epochs)
    "audioset": (True, "16-30", 1), "fsd50k": (True, "21-40", 0), "esc50": (False, "none", 0),
    "speechcommands": (False, "none", 0), "nsynth-instrument": (True, "11-20", 0),
}


def test_the_paper_suite_resolves_to_the_papers_system_on_every_task():
    configs = load_suite("paper").configs
    for task, (balanced, averaging, warmup) in PAPER.items():
        mine = [c for c in configs if c.task == task and c.backbone == "efficientnet_b2"]
        assert mine, task
        leaf_protocol = [c for c in configs if c.task == task and c.backbone != "efficientnet_b2"]
        assert {(c.backbone, c.n_mels) for c in leaf_protocol} == {("efficientnet_b0", 40)}  # claim 4's block
        for cfg in mine:
            assert (cfg.backbone, cfg.pretrained, cfg.head, cfg.loss) == ("efficientnet_b2", "imagenet",
                                                                         "attention", "bce"), cfg.run_name
            assert (cfg.balanced_sampling, cfg.weight_averaging, cfg.warmup_epochs) == (balanced, averaging,
                                                                                       warmup), cfg.run_name
            assert not cfg.batch_size_scales_with_rate and cfg.patience is None
        table = RunConfig.for_task(task, fold=1 if task == "esc50" else None)
        assert (mine[0].lr, mine[0].epochs, mine[0].lr_decay, mine[0].batch_size) == (
            table.lr, table.epochs, table.lr_decay, table.batch_size)
        # claim 3 on every task: DiffRes from 1, 2, 5 ms at δ = 1 − h/10
        hi_res = {(c.hop_ms, c.reduction_rate) for c in mine if c.frontend == "diffres" and c.hop_ms < 10}
        assert hi_res == {(1.0, 0.9), (2.0, 0.8), (5.0, 0.5)}, task
        assert any(c.frontend == "spec" and c.hop_ms == 10.0 for c in mine)


def test_the_small_suite_is_esc50_fold_1_and_a_speech_commands_subset():
    configs = load_suite("small").configs
    assert len(configs) == 30 and {c.task for c in configs} == {"esc50", "speechcommands"}
    assert {c.fold for c in configs if c.task == "esc50"} == {1}
    assert {c.frontend for c in configs} == {"spec", "avgpool", "diffres"}
    assert {c.reduction_rate for c in configs if c.frontend != "spec"} == {0.5, 0.75}
    assert all(c.pretrained == "imagenet" and c.head == "attention" for c in configs)
    assert {c.max_train_clips for c in configs if c.task == "speechcommands"} == {20000}
