"""The numerics fingerprint and the canary."""

from __future__ import annotations

import torch

from benchmark.tracking import numerics


def test_the_canary_is_a_pure_function_of_the_machine_and_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    first = numerics.canary(steps=2)
    after = torch.rand(3)
    assert torch.equal(after, expected)  # a run that computes the canary draws what it would have drawn
    second = numerics.canary(steps=2)
    assert (first.digest, first.final_loss) == (second.digest, second.final_loss)
    assert first.digest != numerics.canary(steps=3).digest  # the digest sees the weights move


def test_the_canary_sees_the_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = numerics.canary(steps=2)
        torch.set_num_threads(2)
        two = numerics.canary(steps=2)
    finally:
        torch.set_num_threads(before)
    assert (one.threads, two.threads) == (1, 2)


def test_fingerprint_names_the_settings_that_move_numbers(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    tags = numerics.fingerprint("cpu")
    assert tags["numerics_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert tags["numerics_threads"] == str(torch.get_num_threads())
    assert tags["numerics_env_mkl_cbwr"] == "AVX2"
    assert tags["numerics_blas"] != ""


def test_committed_rows_decide_the_verdict(tmp_path):
    result = numerics.canary(steps=1)
    path = tmp_path / "canary.csv"
    assert "no canary committed" in numerics.verdict(result, numerics.committed_canaries(path))
    numerics.write_canary(result, path, machine_note="here")
    numerics.write_canary(result, path, machine_note="again")  # one row per machine and setting
    rows = numerics.committed_canaries(path)
    assert len(rows) == 1 and rows[0]["note"] == "again"
    assert numerics.verdict(result, rows).startswith("bit-identical")
    other = [{**rows[0], "digest": "0" * 16, "cpu": "Another CPU"}]
    assert numerics.verdict(result, other).startswith("differs from the committed canary (Another CPU)")
