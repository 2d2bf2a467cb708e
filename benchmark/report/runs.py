"""MLflow -> the runs table the report reads, and the front-end and task metadata it groups by.

``load_runs`` turns a suite's FINISHED MLflow runs into one tidy row per config hash (latest run
kept; the superseded ones are kept aside, never dropped silently); ``download_examples`` fetches a
run's DiffRes example arrays. What a front-end *is* (its family, what it ablates, which front-end it
is a variant of) comes from the registry in ``diffres.frontends``, and whether a task is a control
from ``tasks.get_task(name).control``; both are read when a table is grouped (torch is imported
then, not by ``import benchmark.report``). A front-end name the registry does not know, e.g. from
an old run, has the family ``unknown`` and takes part in no claim; an unknown task is no control.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from benchmark.config import field_names
from benchmark.tracking import artifacts

GROUP_KEYS = ["task", "backbone", "frontend", "hop_ms", "reduction_rate"]
PAIR_KEYS = ["seed", "fold"]
NO_FOLD = -1  # folds are ints; tasks without folds get this sentinel so pairing can merge on it
# A param defines a setting only if it is a RunConfig field: anything else MLflow holds (runtime
# options of older runs) is bookkeeping. A setting param that varies inside one task x backbone x
# front-end x hop x delta group becomes an extra key column rather than being averaged.
SETTING_PARAMS = frozenset(field_names()) - set(GROUP_KEYS) - set(PAIR_KEYS)

# Run health, logged by the trainer since it checks whether a run learned; NaN (unknown) for older runs.
HEALTH_COLUMNS = ["trained", "epochs_run", "best_epoch", "final_train_loss", "chance_loss", "chance_metric",
                  "stopped_early"]
METRIC_COLUMNS = ["test_metric", "val_metric", "flops_frontend", "flops_backbone", "flops_total",
                  "params_frontend", "params_backbone", "params_total", "latency_ms", "t_in", "t_out",
                  "train_aux_loss",  # the last epoch's (DiffRes: its guide loss)
                  "flops_features", "flops_filterbank", "flops_pipeline", "params_filterbank", "latency_pipeline_ms",
                  *HEALTH_COLUMNS]
# The filterbank of a run (RunConfig.filterbank); runs logged before the field existed used the mel path.
FILTERBANK, DEFAULT_FILTERBANK = "filterbank", "mel"
# The numerics_* tags: which machine computed the run (benchmark.tracking.numerics.fingerprint, canary digest).
NUMERICS_COLUMNS = ["numerics_cpu", "numerics_cpu_capability", "numerics_threads", "numerics_canary"]
TAG_COLUMNS = ["config_hash", "metric_name", "git_commit", "engine_digest", "device", "torch_version",
               "torchaudio_version", "timm_version", "numpy_version", *NUMERICS_COLUMNS]

# The registry's families (diffres.frontends.FAMILIES, spelled here so importing the report needs no
# torch) plus the report's own family for names the registry does not know.
REFERENCE = "reference"
UNIFORM_REDUCTION = "uniform reduction"
LEARNED_RESOLUTION = "learned resolution"
LEARNABLE_FILTERBANK = "learnable filterbank"
UNKNOWN_FAMILY = "unknown"


class ReportDataError(ValueError):
    """The MLflow experiment does not hold what a report needs (named experiment, field or value)."""


@dataclass(frozen=True)
class Runs:
    """De-duplicated finished runs (one row per config hash) plus what was set aside and why.

    ``superseded``: the earlier finished runs of a config hash that ``table`` holds a later run of
    (same columns). ``varying``: the RunConfig fields, beyond the group and pair keys, whose value
    differs between finished runs of the suite (a column of ``table`` each, as logged).
    """

    table: pd.DataFrame
    extra_keys: tuple[str, ...]
    n_finished: int
    n_duplicates: int
    n_not_finished: int
    superseded: pd.DataFrame | None = None
    varying: tuple[str, ...] = ()
    n_outside_suite: int = 0  # finished runs of points the suite no longer has
    # per-clip test predictions of the runs of ``table`` (predictions.PREDICTION_TABLE_COLUMNS); None: not read
    predictions: pd.DataFrame | None = None


# ---------------------------------------------------------------------------------- front-end metadata
def frontend_metadata(frontend: pd.Series) -> pd.DataFrame:
    """Per row of ``frontend``: family, variant_of, ablates from the registry (same index)."""
    from diffres.frontends import frontend_info

    known = {}
    for name in frontend.unique():
        try:
            info = frontend_info(name)
        except KeyError:
            known[name] = (UNKNOWN_FAMILY, None, None)
        else:
            known[name] = (info.family, info.variant_of, info.ablates)
    rows = [known[name] for name in frontend]
    return pd.DataFrame(rows, index=frontend.index, columns=["family", "variant_of", "ablates"], dtype=object)


def learnable_filterbank(df: pd.DataFrame) -> pd.Series:
    """Per row: whether its filterbank (column ``filterbank``, ``mel`` when absent) is a learnable one of
    ``diffres.filterbanks``; a name the registry does not know is not."""
    from diffres.filterbanks import filterbank_info

    names = df[FILTERBANK] if FILTERBANK in df.columns else pd.Series(DEFAULT_FILTERBANK, index=df.index)
    known = {}
    for name in names.unique():
        try:
            known[name] = filterbank_info(name).learnable
        except KeyError:
            known[name] = False
    return names.map(known).astype(bool)


def mel_filterbank(df: pd.DataFrame) -> pd.Series:
    """Per row: whether it ran on the (cached) mel filterbank; every run from before the field did."""
    if FILTERBANK not in df.columns:
        return pd.Series(True, index=df.index)
    return df[FILTERBANK].fillna(DEFAULT_FILTERBANK).replace("", DEFAULT_FILTERBANK) == DEFAULT_FILTERBANK


def is_reference(frontend: pd.Series) -> pd.Series:
    """The fixed-resolution reference (``spec``): the baseline of relative cost, claims 1 and 3."""
    return frontend_metadata(frontend)["family"] == REFERENCE


def task_control(task: pd.Series) -> pd.Series:
    """Per row of ``task``: "positive" / "negative" for a control task (``TaskSpec.control``), else None."""
    from tasks import get_task

    kinds = {}
    for name in task.unique():
        try:
            kinds[name] = get_task(name).control
        except (KeyError, ValueError, OSError):  # a task no longer registered, or a user corpus gone
            kinds[name] = None
    return pd.Series([kinds[name] for name in task], index=task.index, dtype=object)


def data_notes(task: pd.Series) -> list[str]:
    """One line per user task of ``task`` (a task YAML or ``folder:DIR``, ...): how its clips were fitted to its
    clip length (cropped / padded counts) and which unreadable files were skipped, from ``TaskSpec.protocol``; for a
    hub dataset the counts recorded when its waveform cache was built (``tasks.wavecache.fit_counts``)."""
    from tasks import get_task
    from tasks.taskref import is_user_ref
    from tasks.wavecache import fit_counts

    out = []
    for name in sorted(n for n in task.unique() if is_user_ref(n)):
        try:
            spec = get_task(name)
        except (KeyError, ValueError, OSError) as err:
            out.append(f"`{name}`: cannot be read now ({err})")
            continue
        line = f"`{name}` (task {spec.name}, {spec.clip_seconds:g} s clips): {spec.protocol}"
        if spec.local is None:  # a hub dataset: its clips are first measured when its waveform cache is built
            fit = fit_counts(spec)
            line += (f"; waveform cache: {fit['cropped']} of {fit['clips']} clips longer (cropped), {fit['padded']} "
                     f"shorter (padded)" if fit else "; cropped / padded counts: no waveform cache of it here")
        out.append(line)
    return out


def unknown_frontends(frontend: pd.Series) -> list[str]:
    return sorted(frontend[frontend_metadata(frontend)["family"] == UNKNOWN_FAMILY].unique())


def registered_frontends(family: str | None = None, **fields: str | None) -> list[str]:
    """Registered names of ``family`` (any when None) whose metadata equals ``fields``, e.g. ablates=..."""
    from diffres.frontends import frontend_info, list_frontends

    return [name for name in list_frontends(family=family)
            if all(getattr(frontend_info(name), k) == v for k, v in fields.items())]


# ------------------------------------------------------------------------------------------- loading
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


def load_runs(suite: str, tracking_uri: str, points: Collection[str] | None = None,
              with_predictions: bool = True) -> Runs:
    """Finished runs of experiment ``suite`` as a tidy frame, de-duplicated by the config_hash tag.

    ``points``: the config hashes of the suite's current points; finished runs of any other hash
    (points since removed or changed in the YAML) are set aside and counted, not read.
    ``with_predictions``: read each kept run's ``test_predictions.csv`` (``predictions.load_predictions``).
    """
    with _tracking(tracking_uri):
        if mlflow.get_experiment_by_name(suite) is None:
            raise ReportDataError(f"no MLflow experiment named {suite!r} at {tracking_uri!r}; run the suite first")
        # One query, one snapshot: workers may be writing runs meanwhile; only the FINISHED ones are read
        # (a run is marked FINISHED last, after its metrics and artefacts), the others only counted.
        every = mlflow.search_runs(experiment_names=[suite])
    raw = every[every["status"] == "FINISHED"].reset_index(drop=True) if not every.empty else every
    if raw.empty:
        raise ReportDataError(f"experiment {suite!r} at {tracking_uri!r} has no FINISHED runs")
    for key in GROUP_KEYS + PAIR_KEYS:
        column = f"params.{key}"
        if column not in raw.columns or (raw[column].isna() & (key != "fold")).any():
            raise ReportDataError(f"MLflow runs of {suite!r} lack the param {key!r} (expected cfg.to_params())")
    if "metrics.test_metric" not in raw.columns:
        raise ReportDataError(f"MLflow runs of {suite!r} lack the metric 'test_metric'")

    df = pd.DataFrame({"run_id": raw["run_id"].astype(str), "start_time": raw["start_time"],
                       "artifact_uri": raw["artifact_uri"].fillna("").astype(str)
                       if "artifact_uri" in raw.columns else ""})
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
        if name in SETTING_PARAMS:
            df[f"param.{name}"] = raw[f"params.{name}"].fillna("").astype(str)
    # The cost of a clip from its waveform (filterbank + front-end + backbone); runs logged before
    # filterbanks were counted carry flops_features (their STFT) beside flops_total, the oldest neither.
    df["flops_pipeline"] = df["flops_pipeline"].fillna(df["flops_features"] + df["flops_total"]).fillna(
        df["flops_total"])
    df["flops_filterbank"] = df["flops_filterbank"].fillna(df["flops_features"])
    fb = f"param.{FILTERBANK}"
    df[fb] = df[fb].replace("", DEFAULT_FILTERBANK) if fb in df.columns else DEFAULT_FILTERBANK
    if FILTERBANK not in params:
        params = sorted([*params, FILTERBANK])

    outside = ~df["config_hash"].isin(points) if points is not None else pd.Series(False, index=df.index)
    df = df[~outside]
    if df.empty:
        raise ReportDataError(f"experiment {suite!r} at {tracking_uri!r} has no FINISHED run of the suite's "
                              f"current points ({int(outside.sum())} of points no longer in the suite)")
    n_finished = len(df)
    df = df.sort_values(["config_hash", "start_time", "run_id"]).reset_index(drop=True)
    latest = ~df.duplicated("config_hash", keep="last")
    kept = df[latest]
    # a setting that varies inside a group is a key; the filterbank is one as soon as the suite has two
    # (LEAF + spec and SincNet + spec are different settings even where no mel + spec run shares their group)
    extra = [name for name in params if f"param.{name}" in df.columns
             and (kept.groupby(GROUP_KEYS)[f"param.{name}"].nunique(dropna=False).max() > 1
                  or (name == FILTERBANK and kept[fb].nunique() > 1))]
    varying = [name for name in params if f"param.{name}" in df.columns and name not in df.columns
               and df[f"param.{name}"].nunique(dropna=False) > 1]
    for name in dict.fromkeys([*extra, *varying]):
        df[name] = df[f"param.{name}"]
    if FILTERBANK not in df.columns:
        df[FILTERBANK] = df[fb]  # claim 4 reads it
    if "param.guide_loss_weight" in df.columns and "guide_loss_weight" not in df.columns:
        df["guide_loss_weight"] = df["param.guide_loss_weight"]  # claim 5a reads the guide-loss ablation
    df = df.drop(columns=[c for c in df.columns if c.startswith("param.")])
    order = GROUP_KEYS + extra + PAIR_KEYS + ["run_id"]
    table = df[latest].sort_values(order).reset_index(drop=True)
    superseded = df[~latest].sort_values(order).reset_index(drop=True)
    n_not_finished = int((every["status"] != "FINISHED").sum()) if not every.empty else 0
    predictions = None
    if with_predictions:
        from benchmark.report.predictions import load_predictions

        with _tracking(tracking_uri):
            predictions = load_predictions(table, tracking_uri)
    return Runs(table, tuple(extra), n_finished, len(superseded), n_not_finished, superseded,
                tuple(dict.fromkeys([*extra, *varying])), int(outside.sum()), predictions)


def download_examples(run_id: str, tracking_uri: str, dst: Path) -> dict[str, np.ndarray] | None:
    """A run's DiffRes example arrays (``artifacts.EXAMPLES_NPZ``), or None when it has none."""
    try:
        with _env("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifacts.EXAMPLES_NPZ,
                                                        dst_path=str(dst), tracking_uri=tracking_uri)
    except Exception:  # noqa: BLE001 - a missing artifact only means "try the next run"
        return None
    try:
        return artifacts.read_examples(Path(local))
    except artifacts.ArtifactError as err:
        raise ReportDataError(f"run {run_id}: {err}") from None
