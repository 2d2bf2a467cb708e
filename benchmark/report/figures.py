"""The report's figures, drawn from the leaderboard: accuracy vs compute, vs δ, vs input hop, and a
DiffRes example (the same drawing as a run's own ``diffres_examples.png``, see benchmark.tracking.artifacts).

Each ``plot_*`` writes one PNG and returns its path, or None when the leaderboard lacks what the
figure needs. A series (a line) is a front-end, plus the backbone or an extra key where they vary; it
keeps one colour in every figure, and the reference front-end is drawn in grey with dotted lines.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from benchmark.report import stats
from benchmark.report.leaderboard import BASELINE_HOP_MS, BASELINE_RATE
from benchmark.report.runs import REFERENCE, is_reference, registered_frontends
from benchmark.tracking import artifacts


def _palette(lb: pd.DataFrame, extra_keys: tuple[str, ...]) -> dict[str, tuple]:
    """One colour per series over the whole leaderboard, so a front-end keeps its colour in every figure."""
    series = lb.assign(series=_series(lb, extra_keys))
    plain = ~series["series"].str.contains(" · ", regex=False)  # the reference itself, not on another filterbank
    spec = sorted(series.loc[is_reference(series["frontend"]) & plain, "series"].unique())
    others = sorted(set(series["series"]) - set(spec))
    base = [c for i, c in enumerate(sns.color_palette("tab10")) if i != 7]  # tab10's grey is kept for spec
    colors = base if len(others) <= len(base) else sns.color_palette("tab20", len(others))
    palette = dict(zip(others, colors, strict=False))
    palette.update({s: (0.3, 0.3, 0.3) for s in spec})
    return palette


SHOWN_KEYS = ("filterbank", "guide_loss_weight")  # extra keys a series names outright; the rest make a recipe


def _unusual(lb: pd.DataFrame, extra_keys: tuple[str, ...]) -> dict[str, pd.Series]:
    """Per extra key, its value on the rows where it differs from its most common value ("" elsewhere)."""
    out = {}
    for k in extra_keys:
        values = lb[k].astype(str)
        out[k] = values.where(values != values.mode().iloc[0], "")
    return out


def _recipes(lb: pd.DataFrame, extra_keys: tuple[str, ...]) -> tuple[pd.Series, dict[str, str]]:
    """Rows whose extra keys beyond SHOWN_KEYS differ from the usual values get a short recipe name
    ("recipe B", "recipe C", ...; "" for the usual one) and the mapping name -> settings, for a caption."""
    unusual = _unusual(lb, tuple(k for k in extra_keys if k not in SHOWN_KEYS))
    text = pd.Series("", index=lb.index)
    for k, v in unusual.items():
        text = text.where(v == "", text + np.where(text == "", "", ", ") + f"{k}=" + v)
    names = {t: f"recipe {chr(ord('B') + i)}" for i, t in enumerate(sorted(set(text) - {""}))}
    return text.map(lambda t: names.get(t, "")), {name: t for t, name in names.items()}


def _series(lb: pd.DataFrame, extra_keys: tuple[str, ...]) -> pd.Series:
    """A line's name: front-end, plus backbone when it varies, plus `filterbank` / `guide_loss_weight`
    where they differ from their usual value (e.g. "diffres · guide_loss_weight=0.0" beside plain
    "diffres"), plus a short recipe name where other settings differ (see `_recipes`)."""
    label = lb["frontend"].astype(str)
    if lb["backbone"].nunique() > 1:
        label = label + " · " + lb["backbone"].astype(str)
    for k, v in _unusual(lb, tuple(k for k in extra_keys if k in SHOWN_KEYS)).items():
        label = label.where(v == "", label + f" · {k}=" + v)
    recipe, _ = _recipes(lb, extra_keys)
    return label.where(recipe == "", label + " · " + recipe)


def _caption(fig: Figure, lb: pd.DataFrame, extra_keys: tuple[str, ...]) -> None:
    """Under the figure: what each recipe name of the legend stands for."""
    _, names = _recipes(lb, extra_keys)
    if names:
        fig.supxlabel("; ".join(f"{name}: {settings}" for name, settings in names.items()), fontsize=8)


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


def _reference_name() -> str:
    return "/".join(registered_frontends(REFERENCE))


def plot_accuracy_vs_flops(lb: pd.DataFrame, path: Path, extra_keys: tuple[str, ...] = ()) -> Path | None:
    """Accuracy against FLOPs per clip from the waveform (filterbank + front-end + backbone)."""
    return _plot_accuracy_vs_cost(lb, path, extra_keys, "flops_pipeline", 1e-6,
                                  "MFLOPs per clip from the waveform (log)",
                                  "Accuracy vs FLOPs per clip")


def plot_accuracy_vs_latency(lb: pd.DataFrame, path: Path, extra_keys: tuple[str, ...] = ()) -> Path | None:
    """Accuracy against the measured latency of one clip from its waveform (`latency_pipeline_ms`: one
    forward pass, batch 1, at the run's thread count), the cost a learnable filterbank's FLOPs understate
    or overstate."""
    return _plot_accuracy_vs_cost(lb, path, extra_keys, "latency_pipeline_ms", 1.0,
                                  "measured ms per clip from the waveform (log)",
                                  "Accuracy vs measured latency per clip (batch 1)")


def _plot_accuracy_vs_cost(lb: pd.DataFrame, path: Path, extra_keys: tuple[str, ...], column: str, scale: float,
                           xlabel: str, title: str) -> Path | None:
    if column not in lb.columns:
        return None
    data = lb[np.isfinite(lb[column].astype(float)) & np.isfinite(lb["mean"])]
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
        rows = rows.assign(x=rows[column].astype(float) * scale * spread)
        for (series, hop), g in rows.groupby(["series", "hop_ms"], sort=True):
            _errorbar(ax, g["x"], g, colors[series], marker=markers[hop], linestyle="none")
        best = rows[stats.pareto_front(rows[column].astype(float), rows["mean"])].sort_values("x")
        ax.step(best["x"], best["mean"], where="post", color="black", linestyle="--", linewidth=1.0, zorder=1)
        ax.scatter(best["x"], best["mean"], s=160, facecolors="none", edgecolors="black", linewidths=1.2, zorder=3)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(task)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_metric_label(lb, task))
        ax.set_ylim(-0.02, 1.02)  # accuracy and mAP live in [0, 1]; CI bars past it are cut
    handles = [Line2D([], [], color=c, marker="o", linestyle="none", label=s) for s, c in colors.items()]
    handles += [Line2D([], [], color="black", marker=m, markerfacecolor="none", linestyle="none",
                       label=f"hop {h:g} ms") for h, m in markers.items()]
    handles += [Line2D([], [], color="black", linestyle="--", marker="o", markerfacecolor="none",
                       markersize=10, label="Pareto front")]
    fig.legend(handles=handles, loc="outside right upper", title="front-end / input hop")
    fig.suptitle(f"{title} (mean ± 95 % CI over seeds/folds)", x=0.01, ha="left")  # clear of a tall legend
    _caption(fig, lb, extra_keys)
    return _save(fig, path)


def _legend_handles(data: pd.DataFrame, colors: dict[str, tuple]) -> list[Line2D]:
    spec = set(data.loc[is_reference(data["frontend"]), "series"])
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
    data = data.assign(series=_series(data, extra_keys), _reference=is_reference(data["frontend"]))
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
            if g["_reference"].iloc[0] and g["reduction_rate"].nunique() == 1:
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
    fig.suptitle(f"Reduction-rate ablation (mean ± 95 % CI; dotted line: {_reference_name()}, no reduction)", x=0.01,
                 ha="left")
    _caption(fig, lb, extra_keys)
    return _save(fig, path)


def plot_accuracy_vs_hop(lb: pd.DataFrame, path: Path, extra_keys: tuple[str, ...] = ()) -> Path | None:
    data = lb[np.isfinite(lb["mean"])]
    data = data.assign(series=_series(data, extra_keys))
    is_spec = is_reference(data["frontend"])
    # A panel per task and δ at which some front-end ran at two or more hops; in it, only those
    # front-ends, with the reference (δ ignored) as the reference line.
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
        spec = rows[is_spec.loc[rows.index]].sort_values("hop_ms")
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
    fig.suptitle(f"Accuracy vs input hop size (mean ± 95 % CI; dotted: {_reference_name()}, no reduction)")
    _caption(fig, lb, extra_keys)
    return _save(fig, path)


def plot_diffres_examples(arrays: dict[str, np.ndarray], run: pd.Series, path: Path, max_examples: int = 2) -> Path:
    """A run's DiffRes examples (``artifacts.read_examples``) with the run named in the title."""
    hop = run["hop_ms"]
    title = (f"{run['task']}: DiffRes, δ = {run['reduction_rate']:g}, hop {hop:g} ms, "
             f"{run['backbone']}, seed {run['seed']} (run {run['run_id'][:8]})")
    return _save(artifacts.draw_examples(arrays, title=title, hop_ms=hop, max_examples=max_examples), path)
