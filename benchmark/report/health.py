"""Run health: did each run train, and did it stop learning before its budget ran out.

The trainer logs per run ``trained`` (1/0: it learned something beyond chance), ``epochs_run``,
``best_epoch`` (0-based), ``final_train_loss``, ``chance_loss``, ``chance_metric`` and
``stopped_early``. Runs logged before these existed have them as NaN: their health is *unknown*,
never taken for "untrained". ``runs_table`` is results/<suite>/runs.csv (every finished run, the
superseded duplicates marked ``used = False``, empty cells for what a run did not log); ``health`` is
what REPORT.md says about the runs the report uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark.report.runs import GROUP_KEYS, HEALTH_COLUMNS, NO_FOLD, PAIR_KEYS, Runs

RUN_VALUE_COLUMNS = ["test_metric", "val_metric", "best_epoch", "epochs_run", "trained", "stopped_early",
                     "final_train_loss", "chance_loss", "chance_metric"]
UNTRAINED_COLUMNS = ["task", "frontend", "hop_ms", "reduction_rate", "backbone", "seed", "fold", "test_metric",
                     "chance_metric", "final_train_loss", "chance_loss", "epochs_run", "run_id"]


# What computed each run: the code (commit, engine digest, provenance), the libraries and the machine's numerics.
PROVENANCE_COLUMNS = ("git_commit", "engine_digest", "provenance", "torch_version", "torchaudio_version",
                      "timm_version", "numpy_version", "numerics_cpu", "numerics_cpu_capability")


def runs_table(runs: Runs) -> pd.DataFrame:
    """One row per finished run: the varying config fields, seed, fold, metrics, health, used, what computed it
    (PROVENANCE_COLUMNS), hash, run id."""
    used = runs.table.assign(used=True)
    frames = [used] if runs.superseded is None or runs.superseded.empty else \
        [used, runs.superseded.assign(used=False)]
    df = pd.concat(frames, ignore_index=True)
    for name in HEALTH_COLUMNS:
        if name not in df.columns:
            df[name] = float("nan")
    columns = [*GROUP_KEYS, *[k for k in runs.varying if k in df.columns], *PAIR_KEYS, *RUN_VALUE_COLUMNS,
               "used", *[c for c in PROVENANCE_COLUMNS if c in df.columns], "config_hash", "run_id"]
    df = df[columns].sort_values([*GROUP_KEYS, *PAIR_KEYS, "run_id"], kind="mergesort").reset_index(drop=True)
    return df.assign(fold=df["fold"].where(df["fold"] != NO_FOLD).astype("Int64"))  # no fold: empty, not -1


def is_untrained(trained: pd.Series) -> pd.Series:
    """Runs that logged trained = 0; NaN (not logged: an older run) is unknown, not untrained."""
    return pd.to_numeric(trained, errors="coerce") == 0.0


@dataclass(frozen=True)
class Health:
    """The runs the report uses (``Runs.table``): how many logged their health, which did not train, and how
    many had their best validation epoch at their last epoch (still improving when the budget ended)."""

    n_runs: int
    n_known: int  # logged `trained`
    untrained: pd.DataFrame  # UNTRAINED_COLUMNS and the suite's extra setting keys
    n_epochs_known: int  # logged both best_epoch and epochs_run
    n_best_is_last: int
    extra_keys: tuple[str, ...] = ()  # Runs.extra_keys: the settings that tell apart runs of one row

    @property
    def best_is_last_share(self) -> float:
        return self.n_best_is_last / self.n_epochs_known if self.n_epochs_known else float("nan")


def health(runs: Runs) -> Health:
    df = runs.table
    for name in HEALTH_COLUMNS:
        if name not in df.columns:
            df = df.assign(**{name: float("nan")})
    untrained = df[is_untrained(df["trained"])]
    epochs = df[df["best_epoch"].notna() & df["epochs_run"].notna()]
    extra = tuple(k for k in runs.extra_keys if k in df.columns and k not in UNTRAINED_COLUMNS)
    return Health(n_runs=len(df), n_known=int(df["trained"].notna().sum()),
                  untrained=untrained[UNTRAINED_COLUMNS + list(extra)].reset_index(drop=True),
                  n_epochs_known=len(epochs),
                  n_best_is_last=int((epochs["best_epoch"] == epochs["epochs_run"] - 1).sum()), extra_keys=extra)
