"""Front-end speed, memory and FLOPs: writes results/bench_frontends.csv and prints it.

1. DiffRes forward+backward time and peak memory for T in {1000, 3000, 10000}, B = 8, F = 128,
   δ in {0.25, 0.5, 0.75}: the linear-time implementation, with the paper's score network and with
   the depthwise-separable one (``score_network`` column), under glibc's allocator as it is and with
   freed memory kept in the heap (``allocator`` column, see ALLOCATORS), against the plain dense
   O(T*T') form (``diffres.reference``: a [B, T, T'] weight matrix and batched matmuls).
   Each case runs in fresh subprocesses (``--case``; 3 for the linear form, 5 at T = 10000, 1 for
   the dense one): a process's time is the median of its passes 2-6, the row's time the median
   over processes (min and max beside it); the peak memory is
   the largest over processes of the peak resident size during the 6 passes (the kernel's
   high-water mark, reset after the imports) minus the resident size before them.
2. FLOPs per clip of every front-end against efficientnet_b2's at the front-end's output size.

Targets on a 2-core CPU: T = 10000, B = 8, δ = 0.75 in <= 0.5 s and <= 1 GB peak;
DiffRes FLOPs <= 5 % of the backbone's.

    python -m benchmark.benches.bench_frontends [--quick]
    python -m benchmark.benches.bench_frontends --compare REV   # the target case, REV against the working tree
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.benches.machine import describe_machine, peak_reader
from benchmark.paths import REPO_ROOT, RESULTS_DIR

if TYPE_CHECKING:  # pandas is imported where tables are built: the timed processes need only torch
    import pandas as pd

ROOT = REPO_ROOT
RESULTS = REPO_ROOT / RESULTS_DIR
# Skip the dense form where its largest tensor alone would exceed this: the max aggregation's
# [B, T, T', F] product (the mean needs only the [B, T, T'] weight matrix and a batched matmul).
DENSE_LIMIT_BYTES = 3 * 2**30

def run_case(impl: str, batch: int, t_in: int, n_mels: int, rate: float, score_network: str,
             diffres_from: str | None = None) -> dict:
    """Time 6 forward+backward passes in this process (meant to be a fresh one, see ``time_case``):
    the median of passes 2-6 and the peak resident memory during them above the memory before.

    ``impl`` is ``"linear"`` (``diffres.DiffRes``) or ``"dense"`` (the same module's merge as
    :func:`diffres.reference.dense_diffres`). ``diffres_from`` puts that tree's ``diffres``
    first on the import path (``--compare`` times an older revision of the package).
    """
    import time

    if diffres_from is not None:
        sys.path.insert(0, diffres_from)
    import torch

    import diffres

    if diffres_from is not None and not Path(diffres.__file__).resolve().is_relative_to(Path(diffres_from).resolve()):
        raise RuntimeError(f"diffres was imported from {diffres.__file__}, not from {diffres_from}")
    torch.manual_seed(0)
    model = diffres.DiffRes(t_in, n_mels, rate, score_network=score_network)
    x = torch.randn(batch, t_in, n_mels)
    if impl == "linear":
        def features():
            return model(x).features
    else:
        from diffres import reference as oracle

        def features():
            return oracle.dense_diffres(model, x)[0]

    reset, peak_kib = peak_reader()
    rss_before = reset()  # reset the peak-RSS mark, so imports do not hide the forward's own peak
    times = []
    for _ in range(6):
        start = time.perf_counter()
        features().mean().backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    peak = peak_kib() - rss_before
    return {"seconds": statistics.median(times[1:]), "peak_mib": peak / 1024}


def _case_command(impl: str, batch: int, t_in: int, n_mels: int, rate: float, score_network: str,
                  diffres_from: Path | None = None) -> list[str]:
    """The command that runs ``run_case`` in a fresh process (from the repository root, see ROOT)."""
    command = [sys.executable, "-m", "benchmark.benches.bench_frontends", "--case", impl, str(batch), str(t_in),
               str(n_mels), str(rate), score_network]
    return command + (["--diffres-from", str(diffres_from)] if diffres_from is not None else [])


# glibc serves tensors above 32 MiB with fresh mmap pages and returns them on free, so every large
# intermediate pays page faults again (expensive in a VM). "cached" keeps freed memory in the heap,
# as a caching allocator (jemalloc, tcmalloc, PyTorch's CUDA allocator) does: the arithmetic alone.
ALLOCATORS = {
    "glibc": {},
    "glibc-cached": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)},
}
CASES = (("linear", "paper"), ("linear", "separable"), ("dense", "paper"))


def time_case(impl: str, batch: int, t_in: int, n_mels: int, rate: float, score_network: str = "paper",
              allocator: str = "glibc", processes: int = 1) -> dict:
    """Median time (and largest peak memory) over ``processes`` fresh processes of 5 timed passes each."""
    runs = []
    for _ in range(processes):
        proc = subprocess.run(
            _case_command(impl, batch, t_in, n_mels, rate, score_network),
            cwd=ROOT, capture_output=True, text=True, check=False, env=os.environ | ALLOCATORS[allocator],
        )
        if proc.returncode != 0:
            return {"seconds": float("nan"), "peak_mib": float("nan"), "note": f"failed: {proc.stderr[-200:]}"}
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in runs), "peak_mib": max(r["peak_mib"] for r in runs),
            "seconds_min": min(r["seconds"] for r in runs), "seconds_max": max(r["seconds"] for r in runs),
            "processes": processes, "note": ""}


def speed_table(t_values, rates, batch: int = 8, n_mels: int = 128) -> pd.DataFrame:
    import pandas as pd

    from diffres import output_frames

    rows = []
    for t_in in t_values:
        for rate in rates:
            t_out = output_frames(t_in, rate)
            for (impl, score_network), allocator in itertools.product(CASES, ALLOCATORS):
                dense_bytes = batch * t_in * t_out * n_mels * 4
                if impl == "dense" and allocator != "glibc":
                    continue  # the oracle's speed is not the point; one allocator is enough
                if impl == "dense" and dense_bytes > DENSE_LIMIT_BYTES:
                    res = {"seconds": float("nan"), "peak_mib": float("nan"),
                           "note": f"skipped: its [B, T, T', F] max product alone needs {dense_bytes / 2**30:.1f} GiB"}
                else:
                    # The linear form in 3 processes (5 at the target size): on a VM, page-fault
                    # cost moves whole runs.
                    processes = 1 if impl == "dense" else 5 if t_in >= 10000 else 3
                    res = time_case(impl, batch, t_in, n_mels, rate, score_network, allocator, processes)
                rows.append({"impl": impl, "score_network": score_network, "allocator": allocator, "batch": batch,
                             "t_in": t_in, "n_mels": n_mels, "reduction_rate": rate, "t_out": t_out,
                             "fwd_bwd_seconds": res["seconds"], "fwd_bwd_seconds_min": res.get("seconds_min"),
                             "fwd_bwd_seconds_max": res.get("seconds_max"), "processes": res.get("processes"),
                             "peak_mib": res["peak_mib"], "note": res["note"]})
                print(f"  {impl:6s} {score_network:9s} {allocator:12s} T={t_in:5d} δ={rate:.2f}: "
                      f"{res['seconds']:.3f} s, {res['peak_mib']:.0f} MiB {res['note']}", flush=True)
    return pd.DataFrame(rows)


def flops_table(t_in: int = 1000, n_mels: int = 128, rates=(0.25, 0.5, 0.75), backbone: str = "efficientnet_b2"):
    import pandas as pd
    import timm
    import torch

    from benchmark.tracking.compute import count_flops
    from diffres import create_frontend, list_frontends

    rows = []
    x = torch.randn(1, t_in, n_mels)
    for name in list_frontends():
        for rate in (0.0,) if name == "spec" else rates:
            fe = create_frontend(name, in_t_dim=t_in, in_f_dim=n_mels, reduction_rate=rate).eval()
            with torch.no_grad():
                feats = fe(x).features
            net = timm.create_model(backbone, pretrained=False, in_chans=fe.out_channels, num_classes=527).eval()
            f_fe, f_bb = count_flops(fe, x), count_flops(net, feats)
            rows.append({"frontend": name, "reduction_rate": rate, "t_in": t_in, "t_out": feats.shape[2],
                         "n_mels": n_mels, "backbone": backbone, "flops_frontend": f_fe, "flops_backbone": f_bb,
                         "frontend_pct_of_backbone": 100.0 * f_fe / f_bb})
    return pd.DataFrame(rows)


def compare_table(rev: str, rounds: int = 5, batch: int = 8, t_in: int = 10000, n_mels: int = 128,
                  rate: float = 0.75) -> pd.DataFrame:
    """The target case timed for git revision ``rev`` and for the working tree, alternating fresh
    processes (``rounds`` each), so a before/after comparison sees the same machine state.

    ``rev`` is checked out in a temporary git worktree; each process runs this tree's ``run_case``
    on the ``diffres`` package of its own tree.
    """
    import tempfile

    import pandas as pd

    root = ROOT
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=root, capture_output=True, text=True,
                            check=True).stdout.strip()
    runs: dict[tuple, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), commit], cwd=root, check=True,
                       capture_output=True)
        try:
            for _ in range(rounds):
                for tree, label in ((old, commit), (root, "working tree")):
                    for score_network, allocator in itertools.product(("paper", "separable"), ALLOCATORS):
                        proc = subprocess.run(
                            _case_command("linear", batch, t_in, n_mels, rate, score_network, tree),
                            cwd=ROOT, capture_output=True, text=True, check=True,
                            env=os.environ | ALLOCATORS[allocator])
                        runs.setdefault((label, score_network, allocator), []).append(
                            json.loads(proc.stdout.strip().splitlines()[-1]))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=root, check=False)
    rows = []
    for (label, score_network, allocator), rs in runs.items():
        secs = [r["seconds"] for r in rs]
        rows.append({"tree": label, "score_network": score_network, "allocator": allocator, "batch": batch,
                     "t_in": t_in, "n_mels": n_mels, "reduction_rate": rate, "processes": len(rs),
                     "fwd_bwd_seconds": statistics.median(secs), "fwd_bwd_seconds_min": min(secs),
                     "fwd_bwd_seconds_max": max(secs), "peak_mib": max(r["peak_mib"] for r in rs)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="T in {1000} only (a smoke run)")
    parser.add_argument("--compare", metavar="REV",
                        help="only time the target case for git revision REV against the working tree, "
                             "alternating processes; writes results/bench_frontends_compare.csv")
    parser.add_argument("--case", nargs=6, metavar=("IMPL", "B", "T", "F", "RATE", "SCORE_NETWORK"),
                        help="(used by the bench itself) time one case in this process and print it as JSON")
    parser.add_argument("--diffres-from", metavar="DIR", help="with --case: import diffres from this tree")
    args = parser.parse_args(argv)
    if args.case:
        impl, batch, t_in, n_mels, rate, score_network = args.case
        print(json.dumps(run_case(impl, int(batch), int(t_in), int(n_mels), float(rate), score_network,
                                  args.diffres_from)))
        return
    import pandas as pd


    machine = describe_machine(torch_version=True)
    print(f"machine: {machine}")
    if args.compare:
        table = compare_table(args.compare)
        table["machine"] = machine
        RESULTS.mkdir(exist_ok=True)
        table.to_csv(RESULTS / "bench_frontends_compare.csv", index=False, float_format="%.4g")
        print(table.drop(columns="machine").sort_values(["score_network", "allocator"]).to_string(index=False))
        return
    speed = speed_table([1000] if args.quick else [1000, 3000, 10000], [0.25, 0.5, 0.75])
    flops = flops_table()
    speed["machine"] = machine
    flops["machine"] = machine
    RESULTS.mkdir(exist_ok=True)
    if not args.quick:
        speed.to_csv(RESULTS / "bench_frontends.csv", index=False, float_format="%.4g")
        flops.to_csv(RESULTS / "bench_frontend_flops.csv", index=False, float_format="%.4g")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(speed.drop(columns="machine").to_string(index=False))
        print(flops.drop(columns="machine").to_string(index=False))


if __name__ == "__main__":
    main()
