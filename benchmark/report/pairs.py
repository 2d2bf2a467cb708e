"""Paired comparisons of runs, and the selectors that pick a comparison's arms from registry metadata.

``compare`` pairs a treatment and a control selection on seed and fold (and the fields ``match`` names),
refusing arms that differ in any other field the suite varies; the selectors read the front-end and
filterbank registries' metadata (``benchmark.report.runs``), never names. The claims (``claims``) and the
controls (``controls``) are built from these.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmark.report import stats
from benchmark.report.health import is_untrained
from benchmark.report.runs import (
    GROUP_KEYS,
    LEARNABLE_FILTERBANK,
    LEARNED_RESOLUTION,
    PAIR_KEYS,
    UNIFORM_REDUCTION,
    Runs,
    frontend_metadata,
    is_reference,
    learnable_filterbank,
)
from benchmark.report.verdicts import PAIRED_COLUMNS, PAIRS

GUIDE_LOSS, RESOLUTION_ENCODING = "guide loss", "resolution encoding"  # what claim 5a / 5b ablate
# One comparison: untrained_pairs counts the pairs with a run that logged trained = 0 (flagged, kept);
# unpaired_* the runs of an arm's setting without a partner, nonfinite_* the pairs dropped for a non-finite
# metric of that arm; not_comparable names the setting the arms differ in (see ``compare``).
PAIR_COUNT_COLUMNS = ["untrained_pairs", "unpaired_treatment", "unpaired_control", "nonfinite_treatment",
                      "nonfinite_control", "not_comparable"]
PAIR_TABLE_COLUMNS = ["task", "backbone", "treatment", "control", *PAIRED_COLUMNS, *PAIR_COUNT_COLUMNS]

def _label(row: pd.Series, side: str, extra_keys: tuple[str, ...]) -> str:
    text = f"{row[f'frontend{side}']} @ {row[f'hop_ms{side}']:g} ms, δ={row[f'reduction_rate{side}']:g}"
    extras = ", ".join(f"{k}={row[f'{k}{side}']}" for k in extra_keys)
    return f"{text} ({extras})" if extras else text


def _in_setting(frame: pd.DataFrame, values: dict) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for k, v in values.items():
        mask &= frame[k] == v
    return mask


def compare(runs: Runs, treatment: pd.Series, control: pd.Series, match: list[str],
            across: tuple[str, ...] = ()) -> pd.DataFrame:
    """Paired test_metric differences treatment - control; pairs share ``match`` + seed + fold.

    One output row (PAIR_TABLE_COLUMNS) per (treatment setting, control setting) with the same
    ``match`` values: the mean, std and plain 95 % CI of the differences; how many pairs hold a run
    that did not train (kept, flagged); per arm, the runs of the setting without a partner
    (``unpaired_*``) and the pairs dropped because that arm's metric is not finite (``nonfinite_*``).

    Every other RunConfig field the suite varies (``Runs.varying``) must be equal in both arms unless
    it is in ``across`` (what the comparison varies by definition, beside front-end, hop and δ): a
    row whose arms differ in one is kept, named in ``not_comparable`` ("epochs: 30 vs 12"), and
    never decided (``verdicts.NOT_COMPARABLE``), so a 30-epoch DiffRes is never read against a 12-epoch
    spectrogram.
    """
    keys = GROUP_KEYS + list(runs.extra_keys)
    recipe = [k for k in runs.varying if k in runs.table.columns and k not in keys and k not in PAIR_KEYS
              and k not in match]
    table = runs.table if "trained" in runs.table.columns else runs.table.assign(trained=np.nan)
    if "config_hash" not in table.columns:  # a table built in code: each row its own configuration
        table = table.assign(config_hash=[f"row:{i}" for i in table.index])
    cols = list(dict.fromkeys(keys + recipe + PAIR_KEYS + ["test_metric", "trained", "config_hash"]))
    t = table.loc[treatment, cols]
    c = table.loc[control, cols]
    merged = t.merge(c, on=match + PAIR_KEYS, suffixes=("_t", "_c"))
    side_keys = [k for k in keys + recipe if k not in match]
    by = match + [f"{k}_t" for k in side_keys] + [f"{k}_c" for k in side_keys]
    rows = []
    for _, group in merged.groupby(by, sort=True):
        first = group.iloc[0].copy()
        for k in match:
            first[f"{k}_t"] = first[f"{k}_c"] = first[k]
        finite_t, finite_c = np.isfinite(group["test_metric_t"]), np.isfinite(group["test_metric_c"])
        ok = group[finite_t & finite_c]
        d = stats.paired_difference(ok["test_metric_t"], ok["test_metric_c"])
        untrained = is_untrained(ok["trained_t"]) | is_untrained(ok["trained_c"])
        paired = set(zip(group["seed"], group["fold"], strict=True))
        unpaired = {}
        for side, frame in (("_t", t), ("_c", c)):
            setting = {**{k: first[k] for k in match}, **{k: first[f"{k}{side}"] for k in side_keys}}
            runs_of = frame[_in_setting(frame, setting)]
            unpaired[side] = sum((s_, f_) not in paired for s_, f_ in zip(runs_of["seed"], runs_of["fold"],
                                                                           strict=True))
        differs = [f"{k}: {first[f'{k}_t']} vs {first[f'{k}_c']}" for k in recipe
                   if k not in across and first[f"{k}_t"] != first[f"{k}_c"]]
        rows.append({"task": first["task_t"], "backbone": first["backbone_t"],
                     "treatment": _label(first, "_t", runs.extra_keys),
                     "control": _label(first, "_c", runs.extra_keys),
                     "n_pairs": d.n_pairs, "mean_diff": d.mean_diff, "std_diff": d.std_diff,
                     "ci95_low": d.ci_low, "ci95_high": d.ci_high, "untrained_pairs": int(untrained.sum()),
                     "unpaired_treatment": unpaired["_t"], "unpaired_control": unpaired["_c"],
                     "nonfinite_treatment": int((~finite_t).sum()), "nonfinite_control": int((~finite_c).sum()),
                     "not_comparable": "; ".join(differs),
                     PAIRS: list(zip(ok["config_hash_t"], ok["config_hash_c"],
                                     ok["test_metric_t"] - ok["test_metric_c"], strict=True))})
    return pd.DataFrame(rows, columns=[*PAIR_TABLE_COLUMNS, PAIRS])


def _diffres_frontend(meta: pd.DataFrame) -> pd.Series:
    return (meta["family"] == LEARNED_RESOLUTION) & meta["variant_of"].isna()


def full_diffres(df: pd.DataFrame) -> pd.Series:
    """DiffRes itself, trained with its guide loss (not a variant, not an ablation)."""
    mask = _diffres_frontend(frontend_metadata(df["frontend"]))
    if "guide_loss_weight" in df.columns:
        mask &= pd.to_numeric(df["guide_loss_weight"], errors="coerce").fillna(1.0) != 0.0
    return mask


def ablation(component: str) -> Callable[[pd.DataFrame], pd.Series]:
    def select(df: pd.DataFrame) -> pd.Series:
        meta = frontend_metadata(df["frontend"])
        mask = meta["ablates"] == component
        if component == GUIDE_LOSS and "guide_loss_weight" in df.columns:
            weight = pd.to_numeric(df["guide_loss_weight"], errors="coerce")
            mask |= _diffres_frontend(meta) & (weight == 0.0)
        return mask

    return select


def family(name: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda df: frontend_metadata(df["frontend"])["family"] == name


reducing_baseline = family(UNIFORM_REDUCTION)  # claim 2's controls


def learnable_front_end(df: pd.DataFrame) -> pd.Series:
    """Claim 4's controls: a learnable filterbank feeding the reference reducer (the learnable front-end as
    its paper ran it), or a front-end registered in the family ``learnable filterbank``."""
    return (learnable_filterbank(df) & is_reference(df["frontend"])) | family(LEARNABLE_FILTERBANK)(df)


