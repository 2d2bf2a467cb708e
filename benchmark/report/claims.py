"""The paper's claims re-tested: paired comparisons of runs and one verdict per claim.

Which runs a claim compares is read from the front-end registry's metadata, never from names:
the reference is the family ``reference``; full DiffRes is the family ``learned resolution`` with
no ``variant_of`` (and a non-zero guide loss); claim 2's baselines are the family ``uniform
reduction``; claim 4's the family ``learnable filterbank``; claim 5's ablations are the front-ends
whose ``ablates`` names the component, plus the recipe-level ablation ``guide_loss_weight = 0``.
Registering a front-end with that metadata puts it into the claims; an unknown name is in none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import stats
from benchmark.paths import PAPER_DIR
from benchmark.report.runs import (
    GROUP_KEYS,
    LEARNABLE_FILTERBANK,
    LEARNED_RESOLUTION,
    PAIR_KEYS,
    REFERENCE,
    UNIFORM_REDUCTION,
    ReportDataError,
    Runs,
    frontend_metadata,
    is_reference,
    registered_frontends,
)

CLAIMS_FILE = PAPER_DIR / "claims.csv"
REFERENCE_HOP_MS = 10.0  # claim 3: delta = 1 - h / 10 keeps T' at the 10 ms frame count
GUIDE_LOSS, RESOLUTION_ENCODING = "guide loss", "resolution encoding"  # what claim 5a / 5b ablate
COMPARISON_COLUMNS = ["claim_id", "task", "backbone", "treatment", "control", "mean_diff",
                      "ci95_low", "ci95_high", "n_pairs", "direction", "holds"]


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


# ------------------------------------------------------------------------------------------ selectors
def _diffres_frontend(meta: pd.DataFrame) -> pd.Series:
    return (meta["family"] == LEARNED_RESOLUTION) & meta["variant_of"].isna()


def full_diffres(df: pd.DataFrame) -> pd.Series:
    """DiffRes itself, trained with its guide loss (not a variant, not an ablation)."""
    mask = _diffres_frontend(frontend_metadata(df["frontend"]))
    if "guide_loss_weight" in df.columns:
        mask &= pd.to_numeric(df["guide_loss_weight"], errors="coerce").fillna(1.0) != 0.0
    return mask


def _ablation(component: str) -> Callable[[pd.DataFrame], pd.Series]:
    def select(df: pd.DataFrame) -> pd.Series:
        meta = frontend_metadata(df["frontend"])
        mask = meta["ablates"] == component
        if component == GUIDE_LOSS and "guide_loss_weight" in df.columns:
            weight = pd.to_numeric(df["guide_loss_weight"], errors="coerce")
            mask |= _diffres_frontend(meta) & (weight == 0.0)
        return mask

    return select


def _family(name: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda df: frontend_metadata(df["frontend"])["family"] == name


reducing_baseline = _family(UNIFORM_REDUCTION)  # claim 2's controls


@dataclass(frozen=True)
class ClaimCheck:
    """How one claim is tested: treatment and control selectors, what a pair must share, and why."""

    treatment: Callable[[pd.DataFrame], pd.Series]
    control: Callable[[pd.DataFrame], pd.Series]
    match: list[str]
    test: str  # the comparison in words
    needs: str  # the runs it needs, said when it is "not run"


def claim_checks() -> dict[str, ClaimCheck]:
    """The check of each claim id; the names in its words are read from the registry now."""
    diffres = "/".join(registered_frontends(LEARNED_RESOLUTION, variant_of=None))
    ref = "/".join(registered_frontends(REFERENCE))
    learnable = ", ".join(registered_frontends(LEARNABLE_FILTERBANK)) or "none registered"
    no_guide = "/".join(registered_frontends(ablates=GUIDE_LOSS))
    no_enc = "/".join(registered_frontends(ablates=RESOLUTION_ENCODING)) or "none registered"
    same = ["task", "backbone", "hop_ms", "reduction_rate"]
    return {
        "1": ClaimCheck(
            lambda d: full_diffres(d) & (d["reduction_rate"] >= 0.25 - 1e-9),
            lambda d: is_reference(d["frontend"]),
            ["task", "backbone", "hop_ms"],
            f"{diffres} at δ ≥ 0.25 minus {ref} (no reduction) at the same input hop",
            f"{diffres} at δ ≥ 0.25 and {ref} at the same hop, sharing ≥ 2 seeds/folds"),
        "2": ClaimCheck(
            full_diffres, reducing_baseline, same,
            f"{diffres} minus each other frame-reducing front-end (pooling, change hop, ...) at the same hop and δ",
            f"{diffres} and at least one other reducing front-end at the same hop and δ"),
        "3": ClaimCheck(
            lambda d: full_diffres(d) & (d["hop_ms"] < REFERENCE_HOP_MS - 1e-9)
            & np.isclose(d["reduction_rate"], 1.0 - d["hop_ms"] / REFERENCE_HOP_MS, atol=1e-6),
            lambda d: is_reference(d["frontend"]) & np.isclose(d["hop_ms"], REFERENCE_HOP_MS),
            ["task", "backbone"],
            f"{diffres} at hop h < 10 ms with δ = 1 − h/10 (same T' as 10 ms) minus {ref} at 10 ms",
            f"{diffres} at a hop h < 10 ms with δ = 1 − h/10 and {ref} at 10 ms"),
        "4": ClaimCheck(
            full_diffres, _family(LEARNABLE_FILTERBANK), ["task", "backbone"],
            f"{diffres} (every δ, hop) minus each learnable front-end (family '{LEARNABLE_FILTERBANK}')",
            f"learnable front-ends (family '{LEARNABLE_FILTERBANK}': {learnable}); none are in this suite"),
        "5a": ClaimCheck(
            full_diffres, _ablation(GUIDE_LOSS), same,
            f"{diffres} minus {diffres} without guide loss (guide_loss_weight = 0"
            + (f" or front-end {no_guide}" if no_guide else "") + ") at the same hop and δ",
            "a no-guide-loss ablation (guide_loss_weight = 0"
            + (f" or a {no_guide} front-end" if no_guide else "") + ")"),
        "5b": ClaimCheck(
            full_diffres, _ablation(RESOLUTION_ENCODING), same,
            f"{diffres} minus {diffres} without resolution encoding ({no_enc}) at the same hop and δ",
            f"a no-resolution-encoding ablation front-end ({no_enc})"),
    }


# ------------------------------------------------------------------------------------------ verdicts
@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    verdict: str
    evidence: str
    comparisons: pd.DataFrame


def fmt_diff(mean: float, low: float, high: float) -> str:
    if not math.isfinite(low):
        return f"{mean:+.4f} [no CI]"
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"


def check_claims(runs: Runs, claims: list[Claim]) -> list[ClaimResult]:
    """Each claim's verdict ('holds' / 'does not hold' / 'not run') with its paired comparisons."""
    checks = claim_checks()
    results = []
    for claim in claims:
        check = checks.get(claim.claim_id)
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
                        f"{worst['control']}: {fmt_diff(worst['mean_diff'], worst['ci95_low'], worst['ci95_high'])}"
                        f" (n={int(worst['n_pairs'])}).")
        results.append(ClaimResult(claim, verdict, evidence, comps))
    return results
