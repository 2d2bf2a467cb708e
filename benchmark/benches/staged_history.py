"""The staged designs the committed suites actually ran, and the p-values that are valid under them.

Before the fixed designs of `quick` (10 seeds a claim arm, decided on a fresh draw), seeds were added to some
comparisons after their results had been looked at: quick's toy-rhythm δ = 0.5 arms ran 5 seeds (verdicts
committed at ffd4697), then 10 (5184317), then 25 for three arms (dcf59f2); the filterbanks suite grew
TD-filterbanks from 5 to 9 seeds and EfficientLEAF from 5 to 15 after inconclusive first looks. The reported
verdicts pooled every seed into one paired t-test, whose error rates are those of a fixed n, not of that design.

This script recomputes, from the runs.csv committed at a revision, for each staged comparison: the one-sided
paired-t p of each stage's new seeds alone, the pooled p that was reported, the inverse-normal combination of
the stages (z = sum_k sqrt(w_k) z_k, w_k = n_k / n: each stage's weight fixed by its size, which was chosen
before its seeds ran, so the combination keeps its level under a data-driven extension; Lehmacher & Wassmer
1999), and the p of the last stage's fresh seeds alone. Output: results/history/staged_designs.csv.

    python -m benchmark.benches.staged_history [--rev b2f1b81]
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.paths import REPO_ROOT

OUT = REPO_ROOT / "results" / "history" / "staged_designs.csv"
# (suite, task, treatment (frontend, δ, filterbank), control (frontend, δ, filterbank), test margin, stages)
STAGED = [
    ("quick", "toy-rhythm", ("diffres", 0.5, "mel"), ("avgpool", 0.5, "mel"), 0.0, [range(0, 5), range(5, 10),
                                                                                  range(10, 25)]),
    ("quick", "toy-rhythm", ("diffres", 0.5, "mel"), ("spec", 0.0, "mel"), 0.01, [range(0, 5), range(5, 10),
                                                                                range(10, 25)]),
    ("quick", "toy-rhythm", ("diffres", 0.5, "mel"), ("maxpool", 0.5, "mel"), 0.0, [range(0, 5), range(5, 10)]),
    ("quick", "toy-rhythm", ("diffres", 0.5, "mel"), ("changehop", 0.5, "mel"), 0.0, [range(0, 5), range(5, 10)]),
    ("quick", "toy-rhythm", ("diffres", 0.5, "mel"), ("diffres-noenc", 0.5, "mel"), 0.0, [range(0, 5), range(5, 10)]),
    ("filterbanks", "toy-rhythm-short", ("diffres", 0.5, "mel"), ("spec", 0.0, "tdfbanks"), 0.0,
     [range(0, 5), range(5, 9)]),
    ("filterbanks", "toy-rhythm-short", ("diffres", 0.5, "mel"), ("spec", 0.0, "efficientleaf"), 0.0,
     [range(0, 5), range(5, 15)]),
]
COLUMNS = ["suite", "task", "treatment", "control", "margin", "stages", "n", "mean_diff", "p_stage_holds",
           "p_pooled_holds", "p_combined_holds", "p_last_stage_holds", "p_stage_refute", "p_pooled_refute",
           "p_combined_refute", "p_last_stage_refute", "revision"]


def one_sided_p(diffs: np.ndarray, shift: float, greater: bool) -> float:
    """Paired t p of H1: mean(diffs) + shift > 0 (greater) or < 0 (not greater); shift = the non-inferiority margin."""
    d = diffs + shift
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    return float(stats.t.sf(t, len(d) - 1) if greater else stats.t.cdf(t, len(d) - 1))


def combined(ps: list[float], ns: list[int]) -> float:
    """Inverse-normal combination with weights n_k / n."""
    w = np.asarray(ns, float) / sum(ns)
    z = float(np.sum(np.sqrt(w) * stats.norm.isf(np.clip(ps, 1e-300, 1 - 1e-16))))
    return float(stats.norm.sf(z))


def _arm(runs: pd.DataFrame, task: str, arm: tuple[str, float, str]) -> pd.Series:
    frontend, rate, filterbank = arm
    fb = runs["filterbank"].fillna("mel") if "filterbank" in runs else pd.Series("mel", index=runs.index)
    rows = runs[(runs["task"] == task) & (runs["frontend"] == frontend) & np.isclose(runs["reduction_rate"], rate)
                & (runs["hop_ms"] == 10) & (fb == filterbank) & (runs["used"].astype(str) == "True")]
    return rows.set_index("seed")["test_metric"]


def staged_table(rev: str) -> pd.DataFrame:
    rows = []
    for suite, task, treat, ctrl, margin, stages in STAGED:
        text = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{rev}:results/{suite}/runs.csv"],
                              capture_output=True, text=True, check=True).stdout
        runs = pd.read_csv(io.StringIO(text))
        diff = (_arm(runs, task, treat) - _arm(runs, task, ctrl)).dropna()
        parts = [diff[diff.index.isin(list(s))].to_numpy() for s in stages]
        all_d = np.concatenate(parts)
        out = {"suite": suite, "task": task, "treatment": "/".join(map(str, treat)),
               "control": "/".join(map(str, ctrl)), "margin": margin,
               "stages": "+".join(str(len(p)) for p in parts), "n": len(all_d),
               "mean_diff": round(float(all_d.mean()), 4), "revision": rev}
        for name, greater in (("holds", True), ("refute", False)):
            ps = [one_sided_p(p, margin, greater) for p in parts]
            out[f"p_stage_{name}"] = " / ".join(f"{p:.3g}" for p in ps)
            out[f"p_pooled_{name}"] = f"{one_sided_p(all_d, margin, greater):.3g}"
            out[f"p_combined_{name}"] = f"{combined(ps, [len(p) for p in parts]):.3g}"
            out[f"p_last_stage_{name}"] = f"{ps[-1]:.3g}"
        rows.append(out)
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="b2f1b81", help="the revision whose committed runs.csv files are read")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    table = staged_table(args.rev)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
