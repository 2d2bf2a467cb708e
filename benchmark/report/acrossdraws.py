"""The A/A control across draws: one setting trained on two draws of clips and seeds (a suite and its replication),
decided against itself.

Each suite's A/A control (``aacontrol``) names a setting and two seed streams; here stream A of the first suite
is compared with stream A of the second, which ran on other clips (``RunConfig.data_seed``) and other seeds. Both
are the same setting on draws from the same population, so there is nothing to find: a decided difference is a
false detection, and it is exactly what a rule blind to the clips would produce — each draw's test set has its
own difficulty, a constant offset for every seed of that draw, which a t-test over seeds takes for an effect.

Two rules, side by side:
- ``seeds×clips`` (the decision, the claims' rule for two independent draws): each draw's mean accuracy has the
  crossed design's variance (``clipstats.crossed_variance``: seeds, clips, interaction); the difference of the
  two means has their sum, referred to a t on ``min(n_seeds) - 1`` df; p of each direction, Holm over the A/A
  comparisons.
- ``t over seeds`` (beside it, for contrast): Welch's two-sample t on the per-seed accuracies, clips ignored.

Reads what the reports wrote: ``results/<suite>/runs.csv`` and ``predictions.parquet`` of each suite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmark.report import clipstats, stats
from benchmark.report.aacontrol import AAControl, matches_setting

ACROSS_COLUMNS = ["task", "setting", "seeds_first", "seeds_second", "n_clips_first", "n_clips_second",
                  "mean_first", "mean_second", "mean_diff", "ci_low", "ci_high", "p_holds_holm", "p_refute_holm",
                  "verdict", "outcome", "p_t_holds", "p_t_refute", "verdict_t"]
PASSED, FALSELY_DETECTED = "passed", "falsely detected"


def correctness_matrix(results: Path, control: AAControl) -> tuple[np.ndarray, list[int]]:
    """[n_seeds, n_clips] 0/1 correctness of stream A of ``control`` in a suite's results folder (its runs.csv and
    predictions.parquet), seeds in stream order, clips by id; the seeds found."""
    runs = pd.read_csv(results / "runs.csv")
    runs = runs[matches_setting(runs, control.setting) & runs["seed"].isin(control.streams[0])]
    if "used" in runs.columns:
        runs = runs[runs["used"].astype(str) == "True"]
    runs = runs.set_index("seed").reindex([s for s in control.streams[0] if s in set(runs["seed"])])
    preds = pd.read_parquet(results / "predictions.parquet")
    rows, clips = [], None
    for seed, config_hash in runs["config_hash"].items():
        p = preds[preds["config_hash"] == config_hash].sort_values("clip_id")
        if p.empty:
            raise ValueError(f"{results / 'predictions.parquet'}: no per-clip predictions of run {config_hash} "
                             f"(seed {seed}): the A/A control across draws needs them")
        ids = p["clip_id"].tolist()
        if clips is not None and ids != clips:
            raise ValueError(f"{results / 'predictions.parquet'}: run {config_hash} was scored on other clips")
        clips = ids
        rows.append((p["pred"].to_numpy() == p["label"].to_numpy()).astype(float))
    return np.array(rows), [int(s) for s in runs.index]


def across_draws(first: Path, second: Path, controls_first: list[AAControl],
                 controls_second: list[AAControl]) -> pd.DataFrame:
    """One row per A/A setting (ACROSS_COLUMNS): stream A of the first suite's draw minus stream A of the second's."""
    if [c.setting for c in controls_first] != [c.setting for c in controls_second]:
        raise ValueError("the two suites declare different A/A settings: compare a suite with its replication")
    k = len(controls_first)
    level = stats.ALPHA / max(k, 1)
    rows = []
    for a, b in zip(controls_first, controls_second, strict=True):
        ca, seeds_a = correctness_matrix(first, a)
        cb, seeds_b = correctness_matrix(second, b)
        diff = ca.mean() - cb.mean()
        se = float(np.sqrt(clipstats.crossed_variance(ca) + clipstats.crossed_variance(cb)))
        df = min(len(seeds_a), len(seeds_b)) - 1
        t_stat, q = diff / se, float(sps.t.ppf(1.0 - level, df))
        p_holds, p_refute = float(sps.t.sf(t_stat, df)), float(sps.t.cdf(t_stat, df))
        low, high = diff - q * se, diff + q * se
        seed_a, seed_b = ca.mean(axis=1), cb.mean(axis=1)
        t = sps.ttest_ind(seed_a, seed_b, equal_var=False)
        p_t = (float(t.pvalue) / 2, 1 - float(t.pvalue) / 2) if t.statistic >= 0 else \
            (1 - float(t.pvalue) / 2, float(t.pvalue) / 2)
        rows.append({"task": a.task, "setting": a.label, "seeds_first": " ".join(map(str, seeds_a)),
                     "seeds_second": " ".join(map(str, seeds_b)), "n_clips_first": ca.shape[1],
                     "n_clips_second": cb.shape[1], "mean_first": ca.mean(), "mean_second": cb.mean(),
                     "mean_diff": ca.mean() - cb.mean(), "ci_low": low, "ci_high": high,
                     "p_holds": p_holds, "p_refute": p_refute, "p_t_holds": p_t[0], "p_t_refute": p_t[1]})
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=ACROSS_COLUMNS)
    table["p_holds_holm"], table["p_refute_holm"] = stats.holm(table["p_holds"]), stats.holm(table["p_refute"])
    table["verdict"] = [_verdict(h, r) for h, r in zip(table["p_holds_holm"], table["p_refute_holm"], strict=True)]
    table["outcome"] = np.where(table["verdict"] == stats.INCONCLUSIVE, PASSED, FALSELY_DETECTED)
    t_holds, t_refute = stats.holm(table["p_t_holds"]), stats.holm(table["p_t_refute"])
    table["verdict_t"] = [_verdict(h, r) for h, r in zip(t_holds, t_refute, strict=True)]
    return table[ACROSS_COLUMNS]


def _verdict(p_holds: float, p_refute: float) -> str:
    if p_holds < stats.ALPHA:
        return stats.HOLDS
    return stats.REFUTED if p_refute < stats.ALPHA else stats.INCONCLUSIVE


def across_text(table: pd.DataFrame) -> str:
    """e.g. "1 A/A setting across draws: 1 passed, 0 falsely detected (t over seeds alone: 1 decided)"."""
    falsely = int((table["outcome"] == FALSELY_DETECTED).sum())
    by_t = int((table["verdict_t"] != stats.INCONCLUSIVE).sum())
    return (f"{len(table)} A/A setting(s) across draws: {len(table) - falsely} passed, {falsely} falsely detected "
            f"(a t over seeds alone, blind to the clips, decides {by_t})")
