"""MLflow runs -> leaderboard CSVs, seaborn figures and REPORT.md (the paper's claims re-tested).

Owns everything a user reads after a suite ran. Reads only MLflow (never the training code, never
torch), so regenerating a report takes seconds and trains nothing. Same MLflow contents in, the
same CSV and markdown bytes out: every table is sorted, every float has a fixed format, and nothing
time-dependent is written.

    build_report("quick", "sqlite:///mlflow.db")  # results/quick/*.csv, reports/quick/*.png + REPORT.md
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from benchmark import stats

CLAIMS_FILE = Path(__file__).parent / "paper" / "claims.csv"
EXAMPLES_ARTIFACT = "diffres_examples.npz"

GROUP_KEYS = ["task", "backbone", "frontend", "hop_ms", "reduction_rate"]
PAIR_KEYS = ["seed", "fold"]
NO_FOLD = -1  # folds are ints; tasks without folds get this sentinel so pairing can merge on it
BASELINE_FRONTEND, BASELINE_HOP_MS, BASELINE_RATE = "spec", 10.0, 0.0
REFERENCE_HOP_MS = 10.0  # claim 3: delta = 1 - h / 10 keeps T' at the 10 ms frame count
LEARNABLE_FRONTENDS = ("leaf", "sincnet", "tdfilterbanks", "td-filterbanks", "tdfbanks")
NO_GUIDE_FRONTENDS = ("diffres-noguide", "diffres_noguide")
NO_ENCODING_FRONTENDS = ("diffres-noenc", "diffres_noenc", "diffres-noresenc", "diffres_noresenc")
# DiffRes itself with another score network: on the leaderboard, never a baseline in a claim.
DIFFRES_VARIANTS = ("diffres-separable",)
# Params that never define a setting (bookkeeping); everything else that varies inside one
# task x backbone x front-end x hop x delta group becomes an extra key column rather than being averaged.
BOOKKEEPING_PARAMS = {"seed", "fold", "num_workers", "progress", "device", "data_dir", "checkpoint_dir"}

METRIC_COLUMNS = ["test_metric", "val_metric", "flops_frontend", "flops_backbone", "flops_total",
                  "params_frontend", "params_backbone", "params_total", "latency_ms", "t_in", "t_out"]
TAG_COLUMNS = ["config_hash", "metric_name", "git_commit", "device", "torch_version", "timm_version"]
COUNT_COLUMNS = ["n", "flops_frontend", "flops_backbone", "flops_total", "params_frontend",
                 "params_backbone", "params_total", "t_in", "t_out"]
LEADERBOARD_VALUE_COLUMNS = ["metric", "mean", "std", "ci95_low", "ci95_high", "n", "val_mean",
                             "flops_frontend", "flops_backbone", "flops_total", "relative_cost",
                             "params_frontend", "params_backbone", "params_total", "latency_ms",
                             "t_in", "t_out"]
FLOAT_FORMAT = "%.6g"


class ReportDataError(ValueError):
    """The MLflow experiment does not hold what a report needs (named experiment, field or value)."""


@dataclass(frozen=True)
class ReportPaths:
    """Where build_report wrote its outputs."""

    leaderboard: Path
    task_tables: tuple[Path, ...]
    comparisons: Path
    figures: tuple[Path, ...]
    report: Path
    skipped: tuple[str, ...]  # one line per figure/claim that could not be produced, with the reason


# ----------------------------------------------------------------------------------------- loading


@contextlib.contextmanager
def _tracking(uri: str):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


@contextlib.contextmanager
def _env(name: str, value: str):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _parse_fold(value) -> int:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_FOLD
    text = str(value).strip()
    return NO_FOLD if text in ("", "None", "null", "nan") else int(float(text))


@dataclass(frozen=True)
class Runs:
    """De-duplicated finished runs (one row per config hash) plus what was dropped and why."""

    table: pd.DataFrame
    extra_keys: tuple[str, ...]
    n_finished: int
    n_duplicates: int
    n_not_finished: int


def load_runs(suite: str, tracking_uri: str) -> Runs:
    """Finished runs of experiment ``suite`` as a tidy frame, de-duplicated by the config_hash tag."""
    with _tracking(tracking_uri):
        if mlflow.get_experiment_by_name(suite) is None:
            raise ReportDataError(f"no MLflow experiment named {suite!r} at {tracking_uri!r}; run the suite first")
        raw = mlflow.search_runs(experiment_names=[suite], filter_string="attributes.status = 'FINISHED'")
        every = mlflow.search_runs(experiment_names=[suite])
    if raw.empty:
        raise ReportDataError(f"experiment {suite!r} at {tracking_uri!r} has no FINISHED runs")
    for key in GROUP_KEYS + PAIR_KEYS:
        if f"params.{key}" not in raw.columns:
            raise ReportDataError(f"MLflow runs of {suite!r} lack the param {key!r} (expected cfg.to_params())")
    if "metrics.test_metric" not in raw.columns:
        raise ReportDataError(f"MLflow runs of {suite!r} lack the metric 'test_metric'")

    df = pd.DataFrame({"run_id": raw["run_id"].astype(str), "start_time": raw["start_time"]})
    df["task"] = raw["params.task"].astype(str)
    df["backbone"] = raw["params.backbone"].astype(str)
    df["frontend"] = raw["params.frontend"].astype(str)
    for key in ("hop_ms", "reduction_rate"):
        df[key] = pd.to_numeric(raw[f"params.{key}"], errors="raise").astype(float).round(6)
    df["seed"] = pd.to_numeric(raw["params.seed"], errors="raise").astype(int)
    df["fold"] = raw["params.fold"].map(_parse_fold).astype(int)
    for name in METRIC_COLUMNS:
        column = f"metrics.{name}"
        df[name] = raw[column].astype(float) if column in raw.columns else np.nan
    for name in TAG_COLUMNS:
        column = f"tags.{name}"
        df[name] = raw[column].fillna("").astype(str) if column in raw.columns else ""
    # A run without a config hash is its own configuration.
    df["config_hash"] = df["config_hash"].where(df["config_hash"] != "", "run:" + df["run_id"])
    params = sorted(c[len("params."):] for c in raw.columns if c.startswith("params."))
    for name in params:
        if name not in GROUP_KEYS and name not in BOOKKEEPING_PARAMS:
            df[f"param.{name}"] = raw[f"params.{name}"].fillna("").astype(str)

    n_finished = len(df)
    df = (df.sort_values(["config_hash", "start_time", "run_id"])
            .drop_duplicates("config_hash", keep="last")
            .reset_index(drop=True))
    extra = []
    for name in params:
        column = f"param.{name}"
        if column in df.columns and df.groupby(GROUP_KEYS)[column].nunique(dropna=False).max() > 1:
            df[name] = df[column]
            extra.append(name)
    if "param.guide_loss_weight" in df.columns and "guide_loss_weight" not in df.columns:
        df["guide_loss_weight"] = df["param.guide_loss_weight"]  # claim 5a reads the guide-loss ablation
    df = df.drop(columns=[c for c in df.columns if c.startswith("param.")])
    df = df.sort_values(GROUP_KEYS + extra + PAIR_KEYS + ["run_id"]).reset_index(drop=True)
    n_not_finished = int((every["status"] != "FINISHED").sum()) if not every.empty else 0
    return Runs(df, tuple(extra), n_finished, n_finished - len(df), n_not_finished)


# ------------------------------------------------------------------------------------- leaderboard


def _frontend_rank(frontend: pd.Series) -> pd.Series:
    return (frontend != BASELINE_FRONTEND).astype(int)


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return (df.assign(_rank=_frontend_rank(df["frontend"]))
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
        flops_total=("flops_total", "mean"), params_frontend=("params_frontend", "mean"),
        params_backbone=("params_backbone", "mean"), params_total=("params_total", "mean"),
        latency_ms=("latency_ms", "mean"), t_in=("t_in", "first"), t_out=("t_out", "first"),
    ).reset_index()
    table = summary.merge(costs, on=keys, how="left")
    base = table[(table["frontend"] == BASELINE_FRONTEND) & np.isclose(table["hop_ms"], BASELINE_HOP_MS)
                 & np.isclose(table["reduction_rate"], BASELINE_RATE)]
    base = base.groupby(["task", "backbone"])["flops_total"].mean().rename("_base_flops").reset_index()
    table = table.merge(base, on=["task", "backbone"], how="left")
    table["relative_cost"] = table["flops_total"] / table["_base_flops"]
    table = table[keys + LEADERBOARD_VALUE_COLUMNS]
    for column in COUNT_COLUMNS:
        table[column] = table[column].round().astype("Int64")
    return _sorted(table, keys)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n"), encoding="utf-8")
    return path


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


# ---------------------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    claim_id: str
    claim: str
    source: str
    paper_value: str


def load_claims(path: Path = CLAIMS_FILE) -> list[Claim]:
    """The paper's claims (benchmark/paper/claims.csv): claim_id, claim, source, paper_value."""
    if not path.is_file():
        raise FileNotFoundError(f"paper claims file not found: {path}")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"claim_id", "claim", "source", "paper_value"} - set(table.columns)
    if missing:
        raise ReportDataError(f"{path} lacks columns {sorted(missing)}")
    return [Claim(r.claim_id, r.claim, r.source, r.paper_value) for r in table.itertuples(index=False)]


def _label(row: pd.Series, side: str, extra_keys: tuple[str, ...]) -> str:
    text = f"{row[f'frontend{side}']} @ {row[f'hop_ms{side}']:g} ms, δ={row[f'reduction_rate{side}']:g}"
    extras = ", ".join(f"{k}={row[f'{k}{side}']}" for k in extra_keys)
    return f"{text} ({extras})" if extras else text


COMPARISON_COLUMNS = ["claim_id", "task", "backbone", "treatment", "control", "mean_diff",
                      "ci95_low", "ci95_high", "n_pairs", "direction", "holds"]


def compare(runs: Runs, treatment: pd.Series, control: pd.Series, match: list[str]) -> pd.DataFrame:
    """Paired test_metric differences treatment - control; pairs share ``match`` + seed + fold.

    One output row per (treatment setting, control setting) with the same ``match`` values.
    """
    keys = GROUP_KEYS + list(runs.extra_keys)
    cols = list(dict.fromkeys(keys + PAIR_KEYS + ["test_metric"]))
    t = runs.table.loc[treatment, cols]
    c = runs.table.loc[control, cols]
    merged = t.merge(c, on=match + PAIR_KEYS, suffixes=("_t", "_c"))
    merged = merged[np.isfinite(merged["test_metric_t"]) & np.isfinite(merged["test_metric_c"])]
    side_keys = [k for k in keys if k not in match]
    by = match + [f"{k}_t" for k in side_keys] + [f"{k}_c" for k in side_keys]
    rows = []
    for _, group in merged.groupby(by, sort=True):
        first = group.iloc[0].copy()
        for k in match:
            first[f"{k}_t"] = first[f"{k}_c"] = first[k]
        d = stats.paired_difference(group["test_metric_t"], group["test_metric_c"])
        rows.append({"task": first["task_t"], "backbone": first["backbone_t"],
                     "treatment": _label(first, "_t", runs.extra_keys),
                     "control": _label(first, "_c", runs.extra_keys),
                     "mean_diff": d.mean_diff, "ci95_low": d.ci_low, "ci95_high": d.ci_high,
                     "n_pairs": d.n_pairs, "direction": d.direction, "holds": d.holds})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS[1:])


def _full_diffres(df: pd.DataFrame) -> pd.Series:
    mask = df["frontend"] == "diffres"
    if "guide_loss_weight" in df.columns:
        mask &= pd.to_numeric(df["guide_loss_weight"], errors="coerce").fillna(1.0) != 0.0
    return mask


def _no_guide(df: pd.DataFrame) -> pd.Series:
    mask = df["frontend"].isin(NO_GUIDE_FRONTENDS)
    if "guide_loss_weight" in df.columns:
        weight = pd.to_numeric(df["guide_loss_weight"], errors="coerce")
        mask |= (df["frontend"] == "diffres") & (weight == 0.0)
    return mask


def _reducing_baseline(df: pd.DataFrame) -> pd.Series:
    special = {BASELINE_FRONTEND, "diffres", *LEARNABLE_FRONTENDS, *NO_GUIDE_FRONTENDS, *NO_ENCODING_FRONTENDS,
               *DIFFRES_VARIANTS}
    return ~df["frontend"].isin(special)


@dataclass(frozen=True)
class ClaimCheck:
    """How one claim is tested: treatment and control selectors, what a pair must share, and why."""

    treatment: Callable[[pd.DataFrame], pd.Series]
    control: Callable[[pd.DataFrame], pd.Series]
    match: list[str]
    test: str  # the comparison in words
    needs: str  # the runs it needs, said when it is "not run"


CLAIM_CHECKS: dict[str, ClaimCheck] = {
    "1": ClaimCheck(
        lambda d: _full_diffres(d) & (d["reduction_rate"] >= 0.25 - 1e-9),
        lambda d: d["frontend"] == BASELINE_FRONTEND,
        ["task", "backbone", "hop_ms"],
        "diffres at δ ≥ 0.25 minus spec (no reduction) at the same input hop",
        "diffres at δ ≥ 0.25 and spec at the same hop, sharing ≥ 2 seeds/folds"),
    "2": ClaimCheck(
        _full_diffres, _reducing_baseline, ["task", "backbone", "hop_ms", "reduction_rate"],
        "diffres minus each other frame-reducing front-end (pooling, change hop, ...) at the same hop and δ",
        "diffres and at least one other reducing front-end at the same hop and δ"),
    "3": ClaimCheck(
        lambda d: _full_diffres(d) & (d["hop_ms"] < REFERENCE_HOP_MS - 1e-9)
        & np.isclose(d["reduction_rate"], 1.0 - d["hop_ms"] / REFERENCE_HOP_MS, atol=1e-6),
        lambda d: (d["frontend"] == BASELINE_FRONTEND) & np.isclose(d["hop_ms"], REFERENCE_HOP_MS),
        ["task", "backbone"],
        "diffres at hop h < 10 ms with δ = 1 − h/10 (same T' as 10 ms) minus spec at 10 ms",
        "diffres at a hop h < 10 ms with δ = 1 − h/10 and spec at 10 ms"),
    "4": ClaimCheck(
        _full_diffres, lambda d: d["frontend"].isin(LEARNABLE_FRONTENDS), ["task", "backbone"],
        "diffres (every δ, hop) minus each learnable front-end (LEAF, SincNet, TD-filterbanks)",
        f"learnable front-ends ({', '.join(LEARNABLE_FRONTENDS)}); none are in this suite"),
    "5a": ClaimCheck(
        _full_diffres, _no_guide, ["task", "backbone", "hop_ms", "reduction_rate"],
        "diffres minus diffres without guide loss (guide_loss_weight = 0 or front-end "
        f"{'/'.join(NO_GUIDE_FRONTENDS)}) at the same hop and δ",
        "a no-guide-loss ablation (guide_loss_weight = 0 or a diffres-noguide front-end)"),
    "5b": ClaimCheck(
        _full_diffres, lambda d: d["frontend"].isin(NO_ENCODING_FRONTENDS),
        ["task", "backbone", "hop_ms", "reduction_rate"],
        f"diffres minus diffres without resolution encoding ({'/'.join(NO_ENCODING_FRONTENDS)}) "
        "at the same hop and δ",
        "a no-resolution-encoding ablation front-end (diffres-noenc)"),
}


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    verdict: str
    evidence: str
    comparisons: pd.DataFrame


def _fmt_diff(mean: float, low: float, high: float) -> str:
    if not math.isfinite(low):
        return f"{mean:+.4f} [no CI]"
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"


def check_claims(runs: Runs, claims: list[Claim]) -> list[ClaimResult]:
    """Each claim's verdict ('holds' / 'does not hold' / 'not run') with its paired comparisons."""
    results = []
    for claim in claims:
        check = CLAIM_CHECKS.get(claim.claim_id)
        if check is None:
            results.append(ClaimResult(claim, stats.NOT_RUN, "no check is defined for this claim id",
                                       pd.DataFrame(columns=COMPARISON_COLUMNS[1:])))
            continue
        df = runs.table
        comps = compare(runs, check.treatment(df), check.control(df), check.match)
        diffs = [stats.PairedDifference(r.mean_diff, r.ci95_low, r.ci95_high, r.n_pairs)
                 for r in comps.itertuples(index=False)]
        verdict = stats.verdict(diffs)
        testable = comps[comps["n_pairs"] >= 2]
        if verdict == stats.NOT_RUN:
            evidence = f"not run: needs {check.needs}."
        else:
            worst = testable.sort_values(["ci95_low", "treatment", "control"]).iloc[0]
            evidence = (f"{check.test}: {int(testable['holds'].sum())} of {len(testable)} comparisons have a "
                        f"95 % CI at/above 0; weakest: {worst['task']}, {worst['treatment']} vs "
                        f"{worst['control']}: {_fmt_diff(worst['mean_diff'], worst['ci95_low'], worst['ci95_high'])}"
                        f" (n={int(worst['n_pairs'])}).")
        results.append(ClaimResult(claim, verdict, evidence, comps))
    return results


# --------------------------------------------------------------------------------------- figures


def _palette(lb: pd.DataFrame, extra_keys: tuple[str, ...]) -> dict[str, tuple]:
    """One colour per series over the whole leaderboard, so a front-end keeps its colour in every figure."""
    series = lb.assign(series=_series(lb, extra_keys))
    spec = sorted(series.loc[series["frontend"] == BASELINE_FRONTEND, "series"].unique())
    others = sorted(set(series["series"]) - set(spec))
    base = [c for i, c in enumerate(sns.color_palette("tab10")) if i != 7]  # tab10's grey is kept for spec
    colors = base if len(others) <= len(base) else sns.color_palette("tab20", len(others))
    palette = dict(zip(others, colors, strict=False))
    palette.update({s: (0.3, 0.3, 0.3) for s in spec})
    return palette


def _series(lb: pd.DataFrame, extra_keys: tuple[str, ...]) -> pd.Series:
    """A line's name: front-end, plus backbone when it varies, plus an extra key only on the rows where
    it differs from its usual value (e.g. "diffres · guide_loss_weight=0.0" beside plain "diffres")."""
    label = lb["frontend"].astype(str)
    if lb["backbone"].nunique() > 1:
        label = label + " · " + lb["backbone"].astype(str)
    for k in extra_keys:
        values = lb[k].astype(str)
        unusual = values != values.mode().iloc[0]
        label = label.where(~unusual, label + f" · {k}=" + values)
    return label


def _metric_label(lb: pd.DataFrame, task: str) -> str:
    names = sorted(set(lb.loc[lb["task"] == task, "metric"].dropna().astype(str)) - {""})
    return f"test {names[0] if len(names) == 1 else 'metric'}"


def _errorbar(ax, x, rows: pd.DataFrame, color, label=None, marker="o", linestyle="-"):
    y = rows["mean"].to_numpy(float)
    low = np.nan_to_num(y - rows["ci95_low"].to_numpy(float), nan=0.0)
    high = np.nan_to_num(rows["ci95_high"].to_numpy(float) - y, nan=0.0)
    ax.errorbar(x, y, yerr=[low, high], color=color, label=label, marker=marker, linestyle=linestyle,
                capsize=3, markersize=6, linewidth=1.5)


def _new_figure(ncols: int, nrows: int = 1, width: float = 5.2, height: float = 4.0,
                legend_width: float = 2.6) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * ncols + legend_width, height * nrows + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return path


def plot_accuracy_vs_flops(lb: pd.DataFrame, path: Path, extra_keys: tuple[str, ...] = ()) -> Path | None:
    data = lb[np.isfinite(lb["flops_total"].astype(float)) & np.isfinite(lb["mean"])]
    if data.empty:
        return None
    tasks = sorted(data["task"].unique())
    data = data.assign(series=_series(data, extra_keys))
    colors = {s: c for s, c in _palette(lb, extra_keys).items() if s in set(data["series"])}
    hops = sorted(data["hop_ms"].unique(), reverse=True)
    markers = dict(zip(hops, ["o", "s", "^", "D", "v", "P", "X", "*"] * 4, strict=False))
    fig, axes = _new_figure(len(tasks))
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = data[data["task"] == task]
        present = sorted(rows["series"].unique())
        # points of equal compute are spread by at most ±4 % along x so their error bars stay apart
        spread = rows["series"].map({s: 1.0 + 0.08 * ((i + 0.5) / len(present) - 0.5) for i, s in enumerate(present)})
        rows = rows.assign(x=rows["flops_total"].astype(float) / 1e6 * spread)
        for (series, hop), g in rows.groupby(["series", "hop_ms"], sort=True):
            _errorbar(ax, g["x"], g, colors[series], marker=markers[hop], linestyle="none")
        best = rows[stats.pareto_front(rows["flops_total"].astype(float), rows["mean"])].sort_values("x")
        ax.step(best["x"], best["mean"], where="post", color="black", linestyle="--", linewidth=1.0, zorder=1)
        ax.scatter(best["x"], best["mean"], s=160, facecolors="none", edgecolors="black", linewidths=1.2, zorder=3)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(task)
        ax.set_xlabel("total compute per clip (MFLOPs, forward, log scale)")
        ax.set_ylabel(_metric_label(lb, task))
        ax.set_ylim(-0.02, 1.02)  # accuracy and mAP live in [0, 1]; CI bars past it are cut
    handles = [Line2D([], [], color=c, marker="o", linestyle="none", label=s) for s, c in colors.items()]
    handles += [Line2D([], [], color="black", marker=m, markerfacecolor="none", linestyle="none",
                       label=f"hop {h:g} ms") for h, m in markers.items()]
    handles += [Line2D([], [], color="black", linestyle="--", marker="o", markerfacecolor="none",
                       markersize=10, label="Pareto front")]
    fig.legend(handles=handles, loc="outside right upper", title="front-end / input hop")
    fig.suptitle("Accuracy vs compute (mean ± 95 % CI over seeds/folds)")
    return _save(fig, path)


def _legend_handles(data: pd.DataFrame, colors: dict[str, tuple]) -> list[Line2D]:
    spec = set(data.loc[data["frontend"] == BASELINE_FRONTEND, "series"])
    present = set(data["series"])
    return [Line2D([], [], color=c, marker="s" if s in spec else "o", linestyle=":" if s in spec else "-", label=s)
            for s, c in colors.items() if s in present]


def _reference_hop(lb: pd.DataFrame) -> float:
    hops = lb["hop_ms"].unique()
    if np.isclose(hops, BASELINE_HOP_MS).any():
        return BASELINE_HOP_MS
    return float(lb["hop_ms"].value_counts().sort_index().idxmax())


def plot_accuracy_vs_rate(lb: pd.DataFrame, path: Path, extra_keys: tuple[str, ...] = ()) -> Path | None:
    hop = _reference_hop(lb)
    data = lb[np.isclose(lb["hop_ms"], hop) & np.isfinite(lb["mean"])]
    if data["reduction_rate"].nunique() < 2:
        return None
    data = data.assign(series=_series(data, extra_keys))
    tasks = sorted(data["task"].unique())
    series = sorted(data["series"].unique())
    colors = _palette(lb, extra_keys)
    fig, axes = _new_figure(len(tasks))
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = data[data["task"] == task]
        present = [s for s in series if (rows["series"] == s).any()]
        for i, s in enumerate(present):
            g = rows[rows["series"] == s].sort_values("reduction_rate")
            dodge = (i - (len(present) - 1) / 2) * 0.006
            if g["frontend"].iloc[0] == BASELINE_FRONTEND and g["reduction_rate"].nunique() == 1:
                ax.axhline(g["mean"].iloc[0], color=colors[s], linestyle=":", linewidth=1.2)
                _errorbar(ax, g["reduction_rate"] + dodge, g, colors[s], label=s, marker="s", linestyle="none")
            else:
                _errorbar(ax, g["reduction_rate"] + dodge, g, colors[s], label=s)
        ax.set_title(f"{task} (input hop {hop:g} ms)")
        ax.set_xlabel("reduction rate δ (fraction of frames removed)")
        ax.set_ylabel(_metric_label(lb, task))
        ax.set_ylim(-0.02, 1.02)  # accuracy and mAP live in [0, 1]; CI bars past it are cut
        ax.set_xticks(sorted(rows["reduction_rate"].unique()))
    fig.legend(handles=_legend_handles(data, colors), loc="outside right upper", title="front-end")
    fig.suptitle("Reduction-rate ablation (mean ± 95 % CI; dotted line: spec, no reduction)")
    return _save(fig, path)


def plot_accuracy_vs_hop(lb: pd.DataFrame, path: Path, extra_keys: tuple[str, ...] = ()) -> Path | None:
    data = lb[np.isfinite(lb["mean"])]
    data = data.assign(series=_series(data, extra_keys))
    is_spec = data["frontend"] == BASELINE_FRONTEND
    # A panel per task and δ at which some front-end ran at two or more hops; in it, only those
    # front-ends, with spec (δ ignored) as the reference.
    spans = data[~is_spec].groupby(["task", "reduction_rate", "series"])["hop_ms"].nunique()
    spans = spans[spans >= 2]
    panels = sorted({(t, r) for t, r, _ in spans.index})
    panels += [(t, BASELINE_RATE) for t in sorted(data.loc[is_spec, "task"].unique())
               if data.loc[is_spec & (data["task"] == t), "hop_ms"].nunique() >= 2
               and t not in {p[0] for p in panels}]
    if not panels:
        return None
    colors = _palette(lb, extra_keys)
    ncols = min(3, len(panels))
    fig, axes = _new_figure(ncols, math.ceil(len(panels) / ncols), width=4.6, height=3.6, legend_width=0.0)
    shown = set()
    for ax, (task, rate) in zip(axes.flat, panels, strict=False):
        rows = data[data["task"] == task]
        spec = rows[rows["frontend"] == BASELINE_FRONTEND].sort_values("hop_ms")
        if not spec.empty:
            _errorbar(ax, spec["hop_ms"], spec, colors[spec["series"].iloc[0]], marker="s", linestyle=":")
            shown |= set(spec["series"])
        for s in sorted(s for t, r, s in spans.index if t == task and r == rate):
            g = rows[(rows["series"] == s) & np.isclose(rows["reduction_rate"], rate)].sort_values("hop_ms")
            _errorbar(ax, g["hop_ms"], g, colors[s])
            shown.add(s)
        ax.set_title(f"{task}, δ = {rate:g}")
        ax.set_xlabel("input hop size (ms)")
        ax.set_ylabel(_metric_label(lb, task))
        ax.set_ylim(-0.02, 1.02)  # accuracy and mAP live in [0, 1]; CI bars past it are cut
        ax.set_xticks(sorted(rows["hop_ms"].unique()))
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    shown_data = data[data["series"].isin(shown)]
    fig.legend(handles=_legend_handles(shown_data, colors), loc="outside lower center", title="front-end",
               ncols=min(len(shown), 5))
    fig.suptitle("Accuracy vs input hop size (mean ± 95 % CI; dotted: spec, no reduction)")
    return _save(fig, path)


def _example_candidates(runs: Runs, task: str) -> pd.DataFrame:
    df = runs.table
    rows = df[(df["task"] == task) & _full_diffres(df)]
    return rows.assign(_hop=(rows["hop_ms"] - BASELINE_HOP_MS).abs(),
                       _rate=(rows["reduction_rate"] - 0.5).abs()).sort_values(
        ["_hop", "_rate", "backbone", "seed", "fold", "run_id"])


def _download_examples(run_id: str, tracking_uri: str, dst: Path) -> dict[str, np.ndarray] | None:
    try:
        with _env("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=EXAMPLES_ARTIFACT,
                                                        dst_path=str(dst), tracking_uri=tracking_uri)
    except Exception:  # noqa: BLE001 - a missing artifact only means "try the next run"
        return None
    with np.load(local) as npz:
        if not {"mel", "score", "merged", "resolution_enc"} <= set(npz.files):
            raise ReportDataError(f"{EXAMPLES_ARTIFACT} of run {run_id} has arrays {sorted(npz.files)}; "
                                  "expected mel, score, merged, resolution_enc")
        return {k: npz[k] for k in ("mel", "score", "merged", "resolution_enc")}


def plot_diffres_examples(arrays: dict[str, np.ndarray], run: pd.Series, path: Path, max_examples: int = 2) -> Path:
    n = min(max_examples, arrays["mel"].shape[0])
    fig, axes = _new_figure(n, 4, width=5.6, height=2.3, legend_width=0.0)
    hop = run["hop_ms"]
    for i in range(n):
        mel, score = arrays["mel"][i], np.asarray(arrays["score"][i]).reshape(-1)  # [T, F], [T]
        merged, enc = arrays["merged"][i], arrays["resolution_enc"][i]  # [T', F]
        ax = axes[:, i]
        for a in ax:
            a.grid(False)
        ax[0].imshow(mel.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
        ax[0].set_title(f"example {i}: log-mel input (T = {mel.shape[0]})")
        ax[0].set_xlabel(f"input frame (hop {hop:g} ms)")
        ax[0].set_ylabel("mel bin")
        ax[1].plot(np.arange(score.size), score, color="tab:blue", linewidth=1.2)
        ax[1].set_xlim(-0.5, score.size - 0.5)
        ax[1].set_ylim(0, max(1.05, float(np.nanmax(score)) * 1.05) if score.size else 1.05)
        ax[1].set_title("importance score")
        ax[1].set_xlabel(f"input frame (hop {hop:g} ms)")
        ax[1].set_ylabel("score")
        ax[2].imshow(merged.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
        ax[2].set_title(f"merged log-mel (T' = {merged.shape[0]})")
        ax[2].set_xlabel("output frame")
        ax[2].set_ylabel("mel bin")
        ax[3].imshow(enc.T, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
        ax[3].set_title("resolution encoding")
        ax[3].set_xlabel("output frame")
        ax[3].set_ylabel("encoding dim")
    fig.suptitle(f"{run['task']}: DiffRes, δ = {run['reduction_rate']:g}, hop {hop:g} ms, "
                 f"{run['backbone']}, seed {run['seed']} (run {run['run_id'][:8]})")
    return _save(fig, path)


# -------------------------------------------------------------------------------------- markdown


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(x, fmt: str) -> str:
    return "–" if x is None or x is pd.NA or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _counts(values: pd.Series) -> str:
    counts = values.replace("", "unknown").value_counts().sort_index()
    return ", ".join(f"`{k}` ({v} runs)" for k, v in counts.items())


def _leaderboard_md(rows: pd.DataFrame, extra_keys: tuple[str, ...]) -> str:
    header = ["front-end", "hop (ms)", "δ", "backbone", *extra_keys, "mean [95 % CI]", "n", "MFLOPs",
              "rel. cost", "params (k)", "latency (ms)", "T → T'"]
    body = []
    for r in rows.to_dict("records"):
        ci = "" if not math.isfinite(r["ci95_low"]) else f" [{r['ci95_low']:.4f}, {r['ci95_high']:.4f}]"
        flops = r["flops_total"]
        params = r["params_total"]
        body.append([r["frontend"], f"{r['hop_ms']:g}", f"{r['reduction_rate']:g}", r["backbone"],
                     *[str(r[k]) for k in extra_keys], f"{r['mean']:.4f}{ci}", str(r["n"]),
                     "–" if flops is pd.NA else f"{flops / 1e6:.2f}", _num(r["relative_cost"], ".3f"),
                     "–" if params is pd.NA else f"{params / 1e3:.1f}", _num(r["latency_ms"], ".2f"),
                     f"{_num(r['t_in'], 'd')} → {_num(r['t_out'], 'd')}"])
    return _md_table(header, body)


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def render_markdown(suite: str, runs: Runs, lb: pd.DataFrame, claims: list[ClaimResult],
                    figures: list[tuple[str, Path]], skipped: list[str], task_tables: dict[str, Path],
                    comparisons_csv: Path, report_dir: Path) -> str:
    df = runs.table
    out = [f"# DiffRes benchmark report — suite `{suite}`", "",
           f"Generated by `benchmark.report.build_report` from the MLflow experiment `{suite}`; "
           "regenerate with `diffres-bench report` (or `make report`), do not edit by hand.", "",
           "## Runs", "",
           f"- finished runs read: {runs.n_finished}; distinct configurations after de-duplication by "
           f"`config_hash` (latest run kept): {len(df)}; duplicates dropped: {runs.n_duplicates}",
           f"- runs ignored because their status is not FINISHED: {runs.n_not_finished}",
           f"- tasks: {', '.join(f'`{t}` ({m})' for t, m in lb.groupby('task')['metric'].first().items())}",
           f"- front-ends: {', '.join(sorted(df['frontend'].unique()))}",
           f"- input hops (ms): {', '.join(f'{h:g}' for h in sorted(df['hop_ms'].unique()))}; "
           f"reduction rates δ: {', '.join(f'{r:g}' for r in sorted(df['reduction_rate'].unique()))}",
           f"- backbones: {', '.join(sorted(df['backbone'].unique()))}; seeds: "
           f"{', '.join(str(s) for s in sorted(df['seed'].unique()))}; folds: "
           + (", ".join(str(f) for f in sorted(df["fold"].unique()) if f != NO_FOLD) or "none"),
           f"- device: {_counts(df['device'])}",
           f"- git commit: {_counts(df['git_commit'])}",
           f"- torch: {_counts(df['torch_version'])}; timm: {_counts(df['timm_version'])}"]
    if runs.extra_keys:
        out.append(f"- parameters that vary within one setting and therefore split rows: "
                   f"{', '.join(runs.extra_keys)}")
    out += ["", "## How to read the numbers", "",
            "- The metric is the test metric at the best-validation epoch (accuracy or mAP, per task).",
            "- Each row aggregates the runs of one task × backbone × front-end × input hop × δ over seeds "
            "(and folds): mean, sample std, 95 % confidence interval of the mean (Student t, n − 1 degrees "
            "of freedom), n runs. With n = 1 there is no interval.",
            "- Compute is per clip, forward pass, front-end plus backbone (MFLOPs). *rel. cost* = total FLOPs "
            f"/ total FLOPs of `{BASELINE_FRONTEND}` at {BASELINE_HOP_MS:g} ms, δ = 0 (same task and backbone). "
            "Latency is the mean forward time per clip as logged by the runner.",
            "", "## Leaderboard", ""]
    for task in sorted(lb["task"].unique()):
        rows = lb[lb["task"] == task]
        out += [f"### {task} ({rows['metric'].iloc[0]})", "",
                _leaderboard_md(rows, runs.extra_keys), "",
                f"CSV: [{_rel(task_tables[task], report_dir)}]({_rel(task_tables[task], report_dir)})", ""]
    out += ["## Figures", ""]
    for caption, path in figures:
        out += [f"**{caption}**", "", f"![{caption}]({_rel(path, report_dir)})", ""]
    if skipped:
        out += ["Not drawn:", ""] + [f"- {line}" for line in skipped] + [""]
    out += ["## The paper's claims", "",
            "Source: Liu et al., *Learning temporal resolution in spectrogram for audio classification* "
            "(AAAI 2024, arXiv 2210.01719), claims as listed in `benchmark/paper/claims.csv`. The paper's "
            "numeric tables were not available to us, so no paper number is shown beside ours.", "",
            "**Rule.** Runs are paired by task, backbone, seed and fold. For each comparison we take the "
            "per-pair difference (treatment − control) of the test metric, its mean and a 95 % Student-t "
            "confidence interval. A comparison *supports* the claim when the lower end of that interval is at "
            "or above 0. A claim **holds** when every comparison with ≥ 2 pairs supports it, **does not hold** "
            "when at least one does not (including \"no clear difference\", i.e. an interval spanning 0), and "
            "is **not run** when the suite has no comparison with ≥ 2 pairs for it. No correction for multiple "
            "comparisons is applied.", ""]
    table = [[c.claim.claim_id, c.claim.claim, c.claim.paper_value, f"**{c.verdict}**", c.evidence]
             for c in claims]
    out += [_md_table(["claim", "statement", "paper value", "verdict", "evidence (difference [95 % CI])"],
                      table), ""]
    out += [f"All comparisons: [{_rel(comparisons_csv, report_dir)}]({_rel(comparisons_csv, report_dir)})", ""]
    for c in claims:
        if c.comparisons.empty:
            continue
        out += [f"### Claim {c.claim.claim_id}: {c.verdict}", "", f"Source: {c.claim.source}", ""]
        body = [[r.task, r.backbone, r.treatment, r.control, _fmt_diff(r.mean_diff, r.ci95_low, r.ci95_high),
                 str(r.n_pairs), r.direction] for r in c.comparisons.itertuples(index=False)]
        out += [_md_table(["task", "backbone", "treatment", "control", "difference [95 % CI]", "pairs",
                           "direction"], body), ""]
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------- builder


def build_report(suite: str, tracking_uri: str, results_dir: Path = Path("results"),
                 reports_dir: Path = Path("reports")) -> ReportPaths:
    """Read suite's finished MLflow runs; write leaderboard CSVs, figures and REPORT.md. Trains nothing."""
    runs = load_runs(suite, tracking_uri)
    results = Path(results_dir) / suite
    report_dir = Path(reports_dir) / suite
    report_dir.mkdir(parents=True, exist_ok=True)

    lb = leaderboard(runs)
    leaderboard_csv = _write_csv(lb, results / "leaderboard.csv")
    task_tables = {task: _write_csv(rows, results / f"{_safe_name(task)}.csv")
                   for task, rows in lb.groupby("task", sort=True)}

    claim_results = check_claims(runs, load_claims())
    comps = [c.comparisons.assign(claim_id=c.claim.claim_id) for c in claim_results if not c.comparisons.empty]
    all_comps = (pd.concat(comps, ignore_index=True) if comps else pd.DataFrame(columns=COMPARISON_COLUMNS))
    comparisons_csv = _write_csv(all_comps[COMPARISON_COLUMNS], results / "claims.csv")

    figures: list[tuple[str, Path]] = []
    skipped: list[str] = []
    plots = [
        ("Accuracy vs compute per task (Pareto front marked; points of equal compute spread ≤ 4 % "
         "sideways)", "accuracy_vs_flops.png", plot_accuracy_vs_flops,
         "no run logged flops_total"),
        ("Accuracy vs reduction rate δ per front-end", "accuracy_vs_reduction_rate.png", plot_accuracy_vs_rate,
         "fewer than two reduction rates at the reference hop"),
        ("Accuracy vs input hop size (tasks with ≥ 2 hops)", "accuracy_vs_hop.png", plot_accuracy_vs_hop,
         "no task has more than one input hop size"),
    ]
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        for caption, name, plot, reason in plots:
            path = plot(lb, report_dir / name, runs.extra_keys)
            if path is None:
                skipped.append(f"{name}: {reason}")
            else:
                figures.append((caption, path))
        with tempfile.TemporaryDirectory() as tmp:
            for task in sorted(lb["task"].unique()):
                name = f"diffres_examples_{_safe_name(task)}.png"
                candidates = _example_candidates(runs, task)
                drawn = False
                for i, (_, run) in enumerate(candidates.head(5).iterrows()):
                    arrays = _download_examples(run["run_id"], tracking_uri, Path(tmp) / f"{task}-{i}")
                    if arrays is not None:
                        figures.append((f"DiffRes on {task}: input, importance score, merged frames, "
                                        "resolution encoding", plot_diffres_examples(arrays, run, report_dir / name)))
                        drawn = True
                        break
                if not drawn:
                    skipped.append(f"{name}: no finished diffres run of {task} has a {EXAMPLES_ARTIFACT} artifact")

    markdown = render_markdown(suite, runs, lb, claim_results, figures, skipped, task_tables,
                               comparisons_csv, report_dir)
    report = report_dir / "REPORT.md"
    report.write_text(markdown, encoding="utf-8")
    skipped += [f"claim {c.claim.claim_id}: {c.evidence}" for c in claim_results if c.verdict == stats.NOT_RUN]
    return ReportPaths(leaderboard_csv, tuple(task_tables[t] for t in sorted(task_tables)), comparisons_csv,
                       tuple(p for _, p in figures), report, tuple(skipped))
