"""Reading MLflow into the runs table: de-duplication, settings, front-end metadata, examples."""

import numpy as np
import pandas as pd
import pytest
from report_helpers import SUITE, Study

from benchmark import report
from benchmark.config import field_names
from benchmark.report import runs as report_runs


def test_load_runs_counts(study):
    s, _, _ = study
    runs = report.load_runs(SUITE, s.uri)
    assert runs.n_duplicates == 1 and runs.n_not_finished == 1
    assert runs.table["config_hash"].is_unique
    assert runs.extra_keys == ()


def test_setting_params_are_the_run_config_fields():
    assert report_runs.SETTING_PARAMS == set(field_names()) - {"task", "backbone", "frontend", "hop_ms",
                                                               "reduction_rate", "seed", "fold"}
    assert "guide_loss_weight" in report_runs.SETTING_PARAMS


def test_only_run_config_fields_split_rows(study, tmp_path):
    s = Study(tmp_path, suite="bookkeeping", uri=study[0].uri)
    for seed in (0, 1):
        # num_workers is no RunConfig field (bookkeeping of an old run); guide_loss_weight is one.
        s.log("toy-b", "diffres", 10.0, 0.5, seed, extra_params={"num_workers": seed})
        s.log("toy-b", "diffres", 10.0, 0.5, seed, extra_params={"guide_loss_weight": 0.0})
    runs = report.load_runs("bookkeeping", s.uri)
    assert runs.extra_keys == ("guide_loss_weight",)
    assert "num_workers" not in runs.table.columns


def test_family_names_are_the_registry_families():
    from diffres.frontends import FAMILIES

    assert (report_runs.REFERENCE, report_runs.UNIFORM_REDUCTION, report_runs.LEARNED_RESOLUTION,
            report_runs.LEARNABLE_FILTERBANK) == FAMILIES
    assert report_runs.UNKNOWN_FAMILY not in FAMILIES


def test_frontend_metadata_comes_from_the_registry():
    names = pd.Series(["spec", "avgpool", "diffres", "diffres-noenc", "diffres-separable", "leaf"],
                      index=[5, 4, 3, 2, 1, 0])
    meta = report_runs.frontend_metadata(names)
    assert meta.index.tolist() == [5, 4, 3, 2, 1, 0]
    assert meta["family"].tolist() == ["reference", "uniform reduction", "learned resolution",
                                       "learned resolution", "learned resolution", "unknown"]
    assert meta["variant_of"].tolist() == [None, None, None, "diffres", "diffres", None]
    assert meta["ablates"].tolist() == [None, None, None, "resolution encoding", None, None]
    assert report_runs.is_reference(names).tolist() == [True] + [False] * 5
    assert report_runs.unknown_frontends(names) == ["leaf"]


def test_examples_without_the_schema_arrays_are_a_clear_error(study, tmp_path):
    s = Study(tmp_path, suite="bad-examples", uri=study[0].uri)
    rid = s.log("toy-b", "diffres", 10.0, 0.5, 0, npz_arrays={"mel": np.zeros((1, 4, 2))})
    with pytest.raises(report.ReportDataError, match=f"run {rid}: diffres_examples.npz has arrays \\['mel'\\]"):
        report_runs.download_examples(rid, s.uri, tmp_path / "dl")
    assert report_runs.download_examples(s.log("toy-b", "spec", 10.0, 0.0, 0), s.uri, tmp_path / "dl") is None


def test_runs_of_points_no_longer_in_the_suite_are_set_aside_and_counted(study):
    s, _, _ = study
    every = report.load_runs(SUITE, s.uri)
    kept = set(every.table["config_hash"].iloc[:3])
    runs = report.load_runs(SUITE, s.uri, points=kept)
    assert set(runs.table["config_hash"]) == kept
    assert runs.n_outside_suite > 0 and runs.n_finished + runs.n_outside_suite == every.n_finished
    with pytest.raises(report.ReportDataError, match="no FINISHED run of the suite's current points"):
        report.load_runs(SUITE, s.uri, points=set())


def test_filterbank_is_a_key_once_a_suite_has_two_and_old_runs_read_as_mel(study, tmp_path):
    s = Study(tmp_path, suite="filterbanks", uri=study[0].uri)
    for seed in (0, 1):
        s.log("toy-b", "diffres", 10.0, 0.5, seed)  # logged before the field existed: mel
        s.log("toy-b", "spec", 10.0, 0.0, seed, extra_params={"filterbank": "leaf"},
              extra_metrics={"flops_features": 5e4, "flops_filterbank": 9e8, "flops_pipeline": 9e8 + 3e7})
    runs = report.load_runs("filterbanks", s.uri)
    assert runs.extra_keys == ("filterbank",)
    table = runs.table.set_index(["frontend", "seed"])
    assert table.loc[("diffres", 0), "filterbank"] == "mel" and table.loc[("spec", 1), "filterbank"] == "leaf"
    # the clip's cost from its waveform; an old run without flops_pipeline counts what it logged
    assert table.loc[("spec", 0), "flops_pipeline"] == 9e8 + 3e7
    assert table.loc[("diffres", 0), "flops_pipeline"] == table.loc[("diffres", 0), "flops_total"]
    assert report_runs.learnable_filterbank(runs.table).tolist() == (runs.table["filterbank"] == "leaf").tolist()
    one = report.load_runs(SUITE, s.uri)  # a suite of mel runs only: no filterbank key
    assert one.extra_keys == () and set(one.table["filterbank"]) == {"mel"}
