"""Size the resolution map from its pilot: the variance components of each comparison and the seeds they ask for.
Writes results/resolution-map-pilot/design.csv (one row per cell x δ x comparison, then the pooled row).

The deciding rule (`benchmark.report.clipstats.clip_test`) reads each comparison as a crossed seeds x clips
matrix of per-clip differences (1 correct / 0 wrong, arm minus arm, same seed, same clips) and its variance of
the mean is

    var(n, N) = s2_seed / n + s2_clip / N + s2_inter / (n N)

with n seeds and N test clips; the pilot estimates the three components per comparison (ANOVA method of
moments, held at zero or above). With 2 seeds a comparison's seed component has 1 degree of freedom, so the
components are pooled over every comparison of the pilot (their mean; the seed component's spread across
comparisons is reported beside it). The seeds asked for are the smallest n at which a difference of each `--gap`
is found with probability `--power` by a one-sided test at the smallest Holm level of the map's family
(`--alpha` over `--family` comparisons), with N = the map's test clips (`tasks.family.MAP_SIZES`), and, where
the exact sign-flip sensitivity test must be able to reach that level, 2 / 2^n <= level.

    python -m benchmark.benches.size_map [--pilot results/resolution-map-pilot2] [--gap 0.03 0.1 0.3] [--family 36]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.paths import RESULTS_DIR
from benchmark.report.clipstats import _mean_squares

PILOT = RESULTS_DIR / "resolution-map-pilot"
COMPARISONS = (("diffres", "avgpool"), ("diffres", "spec"), ("avgpool", "spec"))


def components(d: np.ndarray) -> tuple[float, float, float]:
    """(seed, clip, interaction) variance components of a crossed [n_seeds, n_clips] matrix, none below zero."""
    n_s, n_c = d.shape
    ms_r, ms_c, ms_e = _mean_squares(d)
    return max(ms_r - ms_e, 0.0) / n_c, max(ms_c - ms_e, 0.0) / n_s, ms_e


def correct_matrix(runs: pd.DataFrame, preds: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """{(task, frontend, δ): [seed x clip] 1/0 correctness} from the pilot's runs and predictions."""
    preds = preds.assign(correct=(preds["pred"] == preds["label"]).astype(float))
    merged = preds.merge(runs[["config_hash", "task", "frontend", "reduction_rate", "seed"]], on="config_hash")
    return {key: g.pivot(index="seed", columns="clip_id", values="correct")
            for key, g in merged.groupby(["task", "frontend", "reduction_rate"])}


def rows(runs: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    mats = correct_matrix(runs, preds)
    out = []
    for task in sorted(runs["task"].unique()):
        for rate in sorted(r for r in runs["reduction_rate"].unique() if r > 0):
            for a, b in COMPARISONS:
                ka, kb = (task, a, 0.0 if a == "spec" else rate), (task, b, 0.0 if b == "spec" else rate)
                if ka not in mats or kb not in mats:
                    continue
                ma, mb = mats[ka].align(mats[kb], join="inner")
                d = (ma - mb).to_numpy()
                s2_seed, s2_clip, s2_inter = components(d)
                out.append({"task": task, "reduction_rate": rate, "comparison": f"{a} - {b}", "seeds": d.shape[0],
                            "clips": d.shape[1], "mean_diff": float(d.mean()), "acc_first": float(ma.to_numpy().mean()),
                            "acc_second": float(mb.to_numpy().mean()), "s2_seed": s2_seed, "s2_clip": s2_clip,
                            "s2_inter": s2_inter})
    return pd.DataFrame(out)


def seeds_needed(s2_seed: float, s2_clip: float, s2_inter: float, clips: int, gap: float, level: float,
                 power: float, exact: bool = True) -> int:
    """Smallest n with power >= `power` for a one-sided normal test of a `gap` at `level` (and, with `exact`,
    a sign-flip floor 2 / 2^n <= level)."""
    from scipy.stats import norm

    z = norm.ppf(1 - level) + norm.ppf(power)
    for n in range(2, 201):
        var = s2_seed / n + s2_clip / clips + s2_inter / (n * clips)
        if z * math.sqrt(var) <= gap and (not exact or 2.0 / 2 ** n <= level):
            return n
    return -1


def main(argv: list[str] | None = None) -> None:
    from tasks.family import MAP_SIZES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gap", type=float, nargs="+", default=[0.03, 0.1, 0.3],
                        help="differences to find (accuracy units); the per-comparison column uses the first")
    parser.add_argument("--alpha", type=float, default=0.025, help="one-sided level of a family")
    parser.add_argument("--family", type=int, default=36, help="comparisons in a Holm family (cells x δ)")
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument("--pilot", type=Path, default=PILOT)
    args = parser.parse_args(argv)
    runs = pd.read_csv(args.pilot / "runs.csv")
    table = rows(runs, pd.read_parquet(args.pilot / "predictions.parquet"))
    level = args.alpha / args.family
    pooled = table[["s2_seed", "s2_clip", "s2_inter"]].mean()
    clips = MAP_SIZES["test"]
    table["seeds_needed"] = [seeds_needed(r.s2_seed, r.s2_clip, r.s2_inter, clips, args.gap[0], level, args.power,
                                          exact=False) for r in table.itertuples()]
    summary = pd.DataFrame([{"task": "pooled", "comparison": f"mean of {len(table)}", "s2_seed": pooled["s2_seed"],
                             "s2_clip": pooled["s2_clip"], "s2_inter": pooled["s2_inter"],
                             "seeds_needed": seeds_needed(*pooled, clips=clips, gap=gap, level=level,
                                                          power=args.power, exact=False),
                             "seeds_needed_exact_floor": seeds_needed(*pooled, clips=clips, gap=gap, level=level,
                                                                      power=args.power),
                             "s2_seed_q75": float(table["s2_seed"].quantile(0.75)), "gap": gap, "level": level,
                             "power": args.power, "test_clips": clips} for gap in args.gap])
    out = pd.concat([table, summary], ignore_index=True)
    out.to_csv(args.pilot / "design.csv", index=False, float_format="%.6g")
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(out.to_string(index=False))
    print(f"wrote {args.pilot / 'design.csv'}")


if __name__ == "__main__":
    main()
