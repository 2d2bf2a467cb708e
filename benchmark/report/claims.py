"""The paper's claims re-tested: paired comparisons of runs, decided per claim with the claim's test.

Each claim's test (superiority for "beats", non-inferiority against the suite's margin for "equal
or better") is data: the ``test`` column of benchmark/paper/claims.csv. Every comparison of one claim,
over all tasks of the suite, is one Holm family (``verdicts.decide_table``). Control tasks
(``TaskSpec.control``) are never evidence for a claim; ``controls`` reads them.

Which runs a claim compares is read from the front-end registry's metadata, never from names:
the reference is the family ``reference``; full DiffRes is the family ``learned resolution`` with
no ``variant_of`` (and a non-zero guide loss); claim 2's baselines are the family ``uniform
reduction``; claim 4's the runs on a learnable filterbank (``diffres.filterbanks`` metadata) with the
reference reducer (LEAF + ``spec`` is LEAF as its paper ran it), against DiffRes on the mel filterbank,
plus any front-end of the family ``learnable filterbank``; claim 5's ablations are the front-ends
whose ``ablates`` names the component, plus the recipe-level ablation ``guide_loss_weight = 0``.
Registering a front-end with that metadata puts it into the claims; an unknown name is in none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.paths import PAPER_DIR
from benchmark.report import stats
from benchmark.report.pairs import (
    GUIDE_LOSS,
    PAIR_COUNT_COLUMNS,
    RESOLUTION_ENCODING,
    ablation,
    compare,
    full_diffres,
    learnable_front_end,
    reducing_baseline,
)
from benchmark.report.runs import (
    FILTERBANK,
    LEARNABLE_FILTERBANK,
    LEARNED_RESOLUTION,
    REFERENCE,
    ReportDataError,
    Runs,
    is_reference,
    mel_filterbank,
    registered_frontends,
    task_control,
)
from benchmark.report.verdicts import (
    DECISION_COLUMNS,
    NOT_COMPARABLE,
    PAIRED_COLUMNS,
    claim_reading,
    decide_table,
    summary_of,
)

CLAIMS_FILE = PAPER_DIR / "claims.csv"
REFERENCE_HOP_MS = 10.0  # claim 3: delta = 1 - h / 10 keeps T' at the 10 ms frame count
# A claim with a weaker reading (claims.csv column weaker_test) is decided under both; `verdict` is the claim's.
WEAKER_COLUMNS = ["weaker_test", "weaker_margin", "weaker_verdict", "weaker_p_verdict"]
COMPARISON_COLUMNS = ["claim_id", "task", "backbone", "treatment", "control", *PAIRED_COLUMNS,
                      *DECISION_COLUMNS, *WEAKER_COLUMNS, *PAIR_COUNT_COLUMNS]
CLAIM_FIELDS = ("claim_id", "claim", "test", "source", "paper_value")


@dataclass(frozen=True)
class Claim:
    claim_id: str
    claim: str
    test: str  # stats.SUPERIORITY ("beats") or stats.NON_INFERIORITY ("equal or better")
    source: str
    paper_value: str
    weaker_test: str = ""  # a weaker reading decided beside the claim's test (claim 3: non-inferiority), or ""


def load_claims(path: Path = CLAIMS_FILE) -> list[Claim]:
    """The paper's claims (benchmark/paper/claims.csv): claim_id, claim, test, source, paper_value, and the
    optional weaker_test (empty: none)."""
    if not path.is_file():
        raise FileNotFoundError(f"paper claims file not found: {path}")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(CLAIM_FIELDS) - set(table.columns)
    if missing:
        raise ReportDataError(f"{path} lacks columns {sorted(missing)}")
    if "weaker_test" not in table.columns:
        table["weaker_test"] = ""
    for r in table.itertuples(index=False):
        if r.test not in stats.TESTS:
            raise ReportDataError(f"{path}: claim {r.claim_id}: test={r.test!r}; expected one of {list(stats.TESTS)}")
        if r.weaker_test not in ("", *stats.TESTS) or r.weaker_test == r.test:
            raise ReportDataError(f"{path}: claim {r.claim_id}: weaker_test={r.weaker_test!r}; expected empty or "
                                  f"the other one of {list(stats.TESTS)}")
    unchecked = sorted(set(table["claim_id"]) - set(claim_checks()))
    if unchecked:  # a claim the report cannot test would otherwise read "no check" and look decided
        raise ReportDataError(f"{path}: field 'claim_id', value {unchecked[0]!r}: a claim id with a check in "
                              f"benchmark.report.claims.claim_checks() ({sorted(claim_checks())})")
    return [Claim(*(getattr(r, f) for f in (*CLAIM_FIELDS, "weaker_test"))) for r in table.itertuples(index=False)]


@dataclass(frozen=True)
class ClaimCheck:
    """How one claim is tested: treatment and control selectors, what a pair must share, and why."""

    treatment: Callable[[pd.DataFrame], pd.Series]
    control: Callable[[pd.DataFrame], pd.Series]
    match: list[str]
    test: str  # the comparison in words
    needs: str  # the runs it needs, said when it is "not run"
    explain: Callable[[pd.DataFrame], str] | None = None  # "not run": what the suite's runs say about why
    # The suite's extra setting keys (Runs.extra_keys) a pair may differ in: the one the claim is about.
    # Every other extra key (a filterbank, a min_epochs, ...) must be equal, like `match`.
    across: tuple[str, ...] = ()

    def match_in(self, extra_keys: tuple[str, ...]) -> list[str]:
        return self.match + [k for k in extra_keys if k not in self.across and k not in self.match]


def claim_checks() -> dict[str, ClaimCheck]:
    """The check of each claim id; the names in its words are read from the registry now."""
    diffres = "/".join(registered_frontends(LEARNED_RESOLUTION, variant_of=None))
    ref = "/".join(registered_frontends(REFERENCE))
    from diffres.filterbanks import list_filterbanks

    learnable = ", ".join([*list_filterbanks(learnable=True), *registered_frontends(LEARNABLE_FILTERBANK)])
    no_guide = "/".join(registered_frontends(ablates=GUIDE_LOSS))
    no_enc = "/".join(registered_frontends(ablates=RESOLUTION_ENCODING)) or "none registered"
    same = ["task", "backbone", "hop_ms", "reduction_rate"]
    return {
        # claim 1 is about the mel spectrogram: both arms on the mel filterbank
        "1": ClaimCheck(
            lambda d: full_diffres(d) & mel_filterbank(d) & (d["reduction_rate"] >= 0.25 - 1e-9),
            lambda d: is_reference(d["frontend"]) & mel_filterbank(d),
            ["task", "backbone", "hop_ms"],
            f"{diffres} at δ ≥ 0.25 minus {ref} (no reduction) at the same input hop, both on the mel filterbank",
            f"{diffres} at δ ≥ 0.25 and {ref} at the same hop on the mel filterbank, sharing ≥ 2 seeds/folds"),
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
            lambda d: full_diffres(d) & mel_filterbank(d), learnable_front_end, ["task", "backbone"],
            f"{diffres} on the mel filterbank (every δ, hop) minus each learnable filterbank with the {ref} "
            f"reducer (δ = 0), same backbone and seeds",
            f"runs of a learnable filterbank ({learnable}) with the {ref} reducer; none are in this suite",
            across=(FILTERBANK,)),
        "5a": ClaimCheck(
            full_diffres, ablation(GUIDE_LOSS), same,
            f"{diffres} minus {diffres} without guide loss (guide_loss_weight = 0"
            + (f" or front-end {no_guide}" if no_guide else "") + ") at the same hop and δ",
            "a no-guide-loss ablation (guide_loss_weight = 0"
            + (f" or a {no_guide} front-end" if no_guide else "") + ")", explain=_guide_loss_note,
            across=("guide_loss_weight",)),
        "5b": ClaimCheck(
            full_diffres, ablation(RESOLUTION_ENCODING), same,
            f"{diffres} minus {diffres} without resolution encoding ({no_enc}) at the same hop and δ",
            f"a no-resolution-encoding ablation front-end ({no_enc})"),
    }


def _guide_loss_note(df: pd.DataFrame) -> str:
    """Why a suite without the ablation could not have decided 5a either, when its runs show it: the guide
    loss acts only on empty frames (time masks, digital silence), so where the last-epoch guide loss of
    every DiffRes run is 0, DiffRes without it trains the same model."""
    if "train_aux_loss" not in df.columns:
        return ""
    aux = pd.to_numeric(df.loc[full_diffres(df), "train_aux_loss"], errors="coerce").dropna()
    if aux.empty or aux.max() > 0:
        return ""
    return (f" The guide loss is 0.0 in the last epoch of all {len(aux)} DiffRes runs on the claim tasks here "
            "(no time masks, no silent frames: no empty frames to act on), so an ablation without it would "
            "train the same models; deciding 5a needs a recipe with empty frames (time masks as in the "
            "paper's recipe, or silence).")


# ------------------------------------------------------------------------------------------ verdicts
@dataclass(frozen=True)
class ClaimResult:
    """A claim's decided comparisons (COMPARISON_COLUMNS less claim_id), their counts and a one-line reading."""

    claim: Claim
    check: str  # the comparison in words
    comparisons: pd.DataFrame
    summary: stats.ClaimSummary
    reading: str
    margin: float  # the test's margin: the suite's for non-inferiority, 0 for superiority

    @property
    def not_run(self) -> bool:
        return self.summary.text == stats.NOT_RUN

    @property
    def tasks(self) -> list[str]:
        return sorted(self.comparisons["task"].unique())


def check_claims(runs: Runs, claims: list[Claim], margin: float = stats.DEFAULT_MARGIN) -> list[ClaimResult]:
    """Each claim's comparisons decided by its test; Holm over all of a claim's comparisons, on every task
    of the suite except the control tasks."""
    checks = claim_checks()
    df = runs.table
    evidence = task_control(df["task"]).isna()  # control tasks test the suite, not the paper
    results = []
    for claim in claims:
        check = checks.get(claim.claim_id)
        if check is None:  # load_claims refuses such a file; a hand-made Claim list is refused here
            raise ReportDataError(f"claim {claim.claim_id!r} has no check in claim_checks() (ids: {sorted(checks)})")
        comps = compare(runs, check.treatment(df) & evidence, check.control(df) & evidence,
                        check.match_in(runs.extra_keys), check.across)
        words, needs = check.test, check.needs
        decided = decide_table(comps, claim.test, margin)
        weaker = pd.DataFrame(index=decided.index, columns=WEAKER_COLUMNS, dtype=object).fillna("")
        if claim.weaker_test:
            other = decide_table(comps, claim.weaker_test, margin)
            weaker = pd.DataFrame({"weaker_test": claim.weaker_test, "weaker_margin": other["margin"],
                                   "weaker_verdict": other["verdict"], "weaker_p_verdict": other["p_verdict"]},
                                  index=decided.index, columns=WEAKER_COLUMNS)
        decided = pd.concat([decided, weaker], axis=1)[COMPARISON_COLUMNS[1:]]
        summary = summary_of(decided)
        applied = margin if claim.test == stats.NON_INFERIORITY else 0.0
        reading = claim_reading(decided, summary, claim.test, margin, needs)
        if claim.weaker_test and not decided.empty:
            reading += (f" Weaker reading ({claim.weaker_test}): "
                        f"{summary_of(decided.assign(verdict=decided['weaker_verdict'])).text}.")
        if summary.text == stats.NOT_RUN and check is not None and check.explain is not None:
            reading += check.explain(df[evidence])
        results.append(ClaimResult(claim, words, decided, summary, reading, applied))
    return results


SUMMARY_COLUMNS = ["claim_id", "test", "margin", "tasks", "n_comparisons", "holds", "refuted", "inconclusive",
                   "not_run", "untrained_pairs", "median_n_pairs", "median_ci_half_width_bonferroni", "median_mdd",
                   "reading"]


def claims_summary(results: list[ClaimResult]) -> pd.DataFrame:
    """One row per claim (results/<suite>/claims_summary.csv and REPORT.md's headline)."""
    rows = []
    for r in results:
        c, s = r.comparisons, r.summary
        tested = c[~c["verdict"].isin([stats.NOT_RUN, NOT_COMPARABLE])]
        rows.append({"claim_id": r.claim.claim_id, "test": r.claim.test, "margin": r.margin,
                     "tasks": ";".join(r.tasks), "n_comparisons": len(c), "holds": s.n_holds,
                     "refuted": s.n_refuted, "inconclusive": s.n_inconclusive, "not_run": s.n_not_run,
                     "untrained_pairs": int(c["untrained_pairs"].sum()),
                     "median_n_pairs": tested["n_pairs"].median() if len(tested) else np.nan,
                     "median_ci_half_width_bonferroni":
                         ((tested["ci_high_bonferroni"] - tested["ci_low_bonferroni"]) / 2).median()
                     if len(tested) else np.nan,
                     "median_mdd": tested["mdd"].median() if len(tested) else np.nan, "reading": r.reading})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
