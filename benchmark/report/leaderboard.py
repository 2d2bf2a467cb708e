"""The leaderboard: one row per setting, aggregated over seeds and folds, and its CSV form.

A setting is task x backbone x front-end x input hop x δ (x the extra keys of ``Runs``). Rows are
sorted with the reference front-end first; every float is written with ``FLOAT_FORMAT``, so the same
runs give the same CSV bytes. ``relative_cost`` is a clip's whole cost from its waveform (``flops_pipeline``:
filterbank + front-end + backbone) over that of the mel spectrogram at 10 ms, δ = 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.report import stats
from benchmark.report.runs import GROUP_KEYS, Runs, is_reference

BASELINE_HOP_MS, BASELINE_RATE = 10.0, 0.0  # relative cost is against the reference at 10 ms, δ = 0
COUNT_COLUMNS = ["n", "flops_filterbank", "flops_frontend", "flops_backbone", "flops_total", "flops_pipeline",
                 "params_frontend",
                 "params_backbone", "params_total", "t_in", "t_out"]
LEADERBOARD_VALUE_COLUMNS = ["metric", "mean", "std", "ci95_low", "ci95_high", "n", "val_mean",
                             "flops_filterbank", "flops_frontend", "flops_backbone", "flops_total",
                             "flops_pipeline", "relative_cost",
                             "params_frontend", "params_backbone", "params_total", "latency_ms",
                             "latency_pipeline_ms", "t_in", "t_out"]
FLOAT_FORMAT = "%.6g"


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return (df.assign(_rank=(~is_reference(df["frontend"])).astype(int))
              .sort_values(["task", "backbone", "_rank", "frontend", *keys[3:]], kind="mergesort")
              .drop(columns="_rank").reset_index(drop=True))


def leaderboard(runs: Runs) -> pd.DataFrame:
    """One row per task x backbone x front-end x hop x delta (x extra keys), aggregated over seeds/folds."""
    keys = GROUP_KEYS + list(runs.extra_keys)
    df = runs.table
    summary = stats.summarize_groups(df, keys, "test_metric")
    costs = df.groupby(keys, sort=True).agg(
        metric=("metric_name", "first"), val_mean=("val_metric", "mean"),
        flops_frontend=("flops_frontend", "mean"), flops_backbone=("flops_backbone", "mean"),
        flops_total=("flops_total", "mean"), flops_filterbank=("flops_filterbank", "mean"),
        flops_pipeline=("flops_pipeline", "mean"), params_frontend=("params_frontend", "mean"),
        params_backbone=("params_backbone", "mean"), params_total=("params_total", "mean"),
        latency_ms=("latency_ms", "mean"), latency_pipeline_ms=("latency_pipeline_ms", "mean"),
        t_in=("t_in", "first"), t_out=("t_out", "first"),
    ).reset_index()
    table = summary.merge(costs, on=keys, how="left")
    base = table[is_reference(table["frontend"]) & np.isclose(table["hop_ms"], BASELINE_HOP_MS)
                 & np.isclose(table["reduction_rate"], BASELINE_RATE)]
    if "filterbank" in table.columns:  # the reference is the mel spectrogram itself
        base = base[base["filterbank"] == "mel"]
    base = base.groupby(["task", "backbone"])["flops_pipeline"].mean().rename("_base_flops").reset_index()
    table = table.merge(base, on=["task", "backbone"], how="left")
    table["relative_cost"] = table["flops_pipeline"] / table["_base_flops"]
    table = table[keys + LEADERBOARD_VALUE_COLUMNS]
    for column in COUNT_COLUMNS:
        table[column] = table[column].round().astype("Int64")
    return _sorted(table, keys)


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n"), encoding="utf-8")
    return path
