"""REPORT.md: the controls and the claims at a glance first, then what was run and how healthy it was,
how to read the numbers, the leaderboard per task, the figures and every claim's comparisons.

Pure text from the tables the other report modules computed; every number has a fixed format and
nothing time-dependent is written, so the same runs give the same bytes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from benchmark.report import stats
from benchmark.report.controls import ControlResult
from benchmark.report.health import Health
from benchmark.report.judging import ClaimResult
from benchmark.report.leaderboard import BASELINE_HOP_MS
from benchmark.report.provenance import DECIDABLE, EQUIVALENT, numerics_table
from benchmark.report.replication import counts_text, seed_halves
from benchmark.report.runs import (
    NO_FOLD,
    REFERENCE,
    UNKNOWN_FAMILY,
    Runs,
    data_notes,
    registered_frontends,
    unknown_frontends,
)
from benchmark.report.verdicts import fmt_diff


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(x, fmt: str) -> str:
    return "–" if x is None or x is pd.NA or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _counts(values: pd.Series) -> str:
    counts = values.replace("", "unknown").value_counts().sort_index()
    return ", ".join(f"`{k}` ({v} runs)" for k, v in counts.items())


def _leaderboard_md(rows: pd.DataFrame, extra_keys: tuple[str, ...]) -> str:
    header = ["front-end", "hop (ms)", "δ", "backbone", *extra_keys, "mean [95 % CI]", "n", "MFLOPs",
              "rel. cost", "params (k)", "latency (ms)", "T → T'"]
    body = []
    for r in rows.to_dict("records"):
        ci = "" if not math.isfinite(r["ci95_low"]) else f" [{r['ci95_low']:.4f}, {r['ci95_high']:.4f}]"
        flops = r["flops_pipeline"]
        params = r["params_total"]
        body.append([r["frontend"], f"{r['hop_ms']:g}", f"{r['reduction_rate']:g}", r["backbone"],
                     *[str(r[k]) for k in extra_keys], f"{r['mean']:.4f}{ci}", str(r["n"]),
                     "–" if flops is pd.NA else f"{flops / 1e6:.2f}", _num(r["relative_cost"], ".3f"),
                     "–" if params is pd.NA else f"{params / 1e3:.1f}", _num(r["latency_ms"], ".2f"),
                     f"{_num(r['t_in'], 'd')} → {_num(r['t_out'], 'd')}"])
    return _md_table(header, body)


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def _interval(low: float, high: float) -> str:
    return "–" if not math.isfinite(low) else f"[{low:+.4f}, {high:+.4f}]"


def _link(path: Path, report_dir: Path) -> str:
    return f"[{_rel(path, report_dir)}]({_rel(path, report_dir)})"


def _banner(controls: list[ControlResult]) -> list[str]:
    failed = [f"{c.kind} control `{c.task}` {c.outcome}" for c in controls if c.failed]
    unchecked = [f"{c.kind} control `{c.task}` not run" for c in controls if c.not_run]
    out = []
    if failed:
        out += [f"**This suite failed its controls: {'; '.join(failed)}. Its verdicts on the claims cannot be "
                "trusted until the controls pass (see \"Does the suite detect what it should\").**", ""]
    if unchecked:
        out += [f"**This suite could not check its controls: {'; '.join(unchecked)}.**", ""]
    return out


def _controls_md(controls: list[ControlResult], csv: Path, report_dir: Path) -> list[str]:
    out = ["## Does the suite detect what it should", ""]
    if not controls:
        return out + ["No control task in this suite (tasks with `TaskSpec.control`, e.g. those of "
                      "`tasks/controls.py`) and no `aa_control` in its suite file, so nothing here shows that it can "
                      "detect a real difference or that "
                      "it does not invent one.", ""]
    out += [f"- `{c.task}` ({c.kind} control) — rule: {c.rule} — **{c.outcome}**: {c.text}" for c in controls]
    out += ["", "Each comparison names the rule that decided it: *seeds×clips t* where every paired run "
                "logged its per-clip test predictions, else *paired t* over seeds."]
    return out + ["", "Control tasks are not evidence for the paper's claims: their comparisons are only here, "
                      f"all of them in {_link(csv, report_dir)}.", ""]


def _headline_md(summary: pd.DataFrame, margin: float, margin_source: str, csv: Path, report_dir: Path) -> list[str]:
    body = [[r.claim_id, r.test, f"{r.margin:g}", r.tasks.replace(";", ", ") or "–", str(r.holds), str(r.refuted),
             str(r.inconclusive), str(r.not_run), str(r.untrained_pairs) if r.untrained_pairs else "–", r.reading]
            for r in summary.itertuples(index=False)]
    return ["## The claims at a glance", "",
            f"Non-inferiority margin: {margin:g} ({margin_source}); superiority tests against 0. Each claim's "
            "comparisons over all (non-control) tasks of the suite form one Holm family. Counts are comparisons.", "",
            _md_table(["claim", "test", "margin", "tasks", "holds", "refuted", "inconclusive", "not run",
                       "untrained pairs", "reading"], body), "",
            f"CSV: {_link(csv, report_dir)}", ""]


def _health_md(h: Health, runs_csv: Path, report_dir: Path) -> list[str]:
    out = ["## Run health", "",
           f"- runs that logged their health (`trained`): {h.n_known} of {h.n_runs}; the others were logged "
           "before the trainer checked and count as unknown, not as untrained",
           f"- runs that did not train (`trained` = 0): {len(h.untrained)}"]
    if h.n_epochs_known:
        out.append(f"- best validation epoch = last epoch (`best_epoch == epochs_run - 1`): {h.n_best_is_last} of "
                   f"{h.n_epochs_known} runs ({100 * h.best_is_last_share:.0f} %); a high share means the epoch "
                   "budget ended while the runs were still improving")
    else:
        out.append("- best validation epoch = last epoch: unknown (no run logged both `best_epoch` and `epochs_run`)")
    out += [f"- every finished run, with its health: {_link(runs_csv, report_dir)}", ""]
    if len(h.untrained):
        body = [[r["task"], r["frontend"], f"{r['hop_ms']:g}", f"{r['reduction_rate']:g}", r["backbone"],
                 *[str(r[k]) for k in h.extra_keys], str(r["seed"]), "–" if r["fold"] == NO_FOLD else str(r["fold"]),
                 _num(r["test_metric"], ".4f"), _num(r["chance_metric"], ".4f"), _num(r["final_train_loss"], ".4f"),
                 _num(r["chance_loss"], ".4f"), _num(r["epochs_run"], ".0f"), r["run_id"]]
                for _, r in h.untrained.iterrows()]
        out += ["Runs that did not train (kept in every table; each comparison they are in is marked ⚠):", "",
                _md_table(["task", "front-end", "hop (ms)", "δ", "backbone", *h.extra_keys, "seed", "fold", "test",
                           "chance", "final train loss", "chance loss", "epochs", "run"], body), ""]
    return out


def _claims_md(claims: list[ClaimResult], comparisons_csv: Path, report_dir: Path) -> list[str]:
    out = ["## The paper's claims", "",
           "Source: Liu et al., *Learning temporal resolution in spectrogram for audio classification* "
           "(AAAI 2024, arXiv 2210.01719), claims as listed in `benchmark/paper/claims.csv` (with each claim's "
           "test). The paper's numeric tables were not available to us, so no paper number is shown beside ours.", "",
           "**Rule** (stated once, in docs/benchmark.md, \"How claims are judged\"): one-sided tests "
           f"at {stats.ALPHA:g} per direction, Holm over each claim's comparisons. Where every paired run logged "
           "its per-clip test predictions (accuracy tasks), the test is the seeds × clips t: the variance of the "
           "mean difference over seeds and test clips (a crossed design, unbiased ANOVA components), on a t with "
           "n_seeds − 1 df, so p-values and intervals count the clips as well as the seeds "
           "(column *rule*: seeds×clips t; the paired t over seeds is kept beside it in claims.csv, "
           "`verdict_t`); elsewhere it is the paired t over seeds (rule: paired t: no per-clip predictions). "
           "A comparison **holds** when its "
           "Holm-adjusted p of \"holds\" is ≤ 0.025, is **refuted** when that of \"refuted\" is, and is "
           "**inconclusive** otherwise. *p (Holm)* is the adjusted p of the direction that decided (the "
           "\"refuted\" one on refuted rows). *Simultaneous CI*: Bonferroni, each bound at 0.025 / k, so all "
           "intervals of a claim hold together with ≥ 95 %; a verdict can hold while its simultaneous interval "
           "still touches the threshold (Holm is the stronger test), never the reverse. *MDD* and *pairs "
           "needed*: 80 % power at the Bonferroni level. ⚠: pairs containing a run that did not train.", ""]
    table = [[c.claim.claim_id, c.claim.claim, c.claim.test, c.claim.paper_value, c.summary.text, c.reading]
             for c in claims]
    out += [_md_table(["claim", "statement", "test", "paper value", "comparisons", "reading"], table), "",
            f"All comparisons: {_link(comparisons_csv, report_dir)}", ""]
    for c in claims:
        if c.comparisons.empty:
            continue
        out += [f"### Claim {c.claim.claim_id} ({c.claim.test}): {c.summary.text}", "", f"Tested: {c.check}.", "",
                f"Source: {c.claim.source}", ""]
        weaker = bool(c.claim.weaker_test)
        body = [[r.task, r.backbone, r.treatment, r.control, fmt_diff(r.mean_diff, r.ci95_low, r.ci95_high),
                 _interval(r.ci_low_bonferroni, r.ci_high_bonferroni), r.rule, _num(r.p_verdict, ".3g"),
                 _num(r.mdd, ".4f"), _num(r.pairs_needed, ".0f"), _pairs(r),
                 f"**{r.verdict}**" + (f" ⚠ {r.untrained_pairs} untrained" if r.untrained_pairs else "")
                 + (f" ({r.not_comparable})" if r.not_comparable else ""),
                 *([f"{r.weaker_verdict} (p {_num(r.weaker_p_verdict, '.3g')})"] if weaker else [])]
                for r in c.comparisons.itertuples(index=False)]
        out += [_md_table(["task", "backbone", "treatment", "control", "difference [95 % CI]",
                           "simultaneous CI (Bonferroni)", "rule", "p (Holm)", "MDD", "pairs needed", "pairs",
                           f"verdict ({c.claim.test})", *([f"{c.claim.weaker_test} (weaker)"] if weaker else [])],
                          body), ""]
    return out


def _pairs(r) -> str:
    """n pairs, plus the runs left out of them: unpaired (t/c) and non-finite (t/c) when there are any."""
    left = [f"{name} {int(t)}/{int(c)}" for name, t, c in (
        ("unpaired", r.unpaired_treatment, r.unpaired_control), ("non-finite", r.nonfinite_treatment,
                                                                 r.nonfinite_control)) if t or c]
    return str(int(r.n_pairs)) + (f" ({', '.join(left)})" if left else "")


def _not_current(every: Runs | None) -> pd.DataFrame:
    if every is None or "provenance" not in every.table.columns:
        return pd.DataFrame(columns=["provenance"])
    return every.table[~every.table["provenance"].isin(DECIDABLE)]


def _stale_banner(every: Runs | None, include_stale: bool) -> list[str]:
    others = _not_current(every)
    if not include_stale or others.empty:
        return []
    counts = ", ".join(f"{n} {k}" for k, n in others["provenance"].value_counts().sort_index().items())
    return [f"**This report was built with `--include-stale`: its verdicts, controls and leaderboards include "
            f"{len(others)} run(s) not trained by the current training code ({counts}); see \"Provenance\".**", ""]


def _provenance_md(every: Runs | None, include_stale: bool, runs_csv: Path, report_dir: Path) -> list[str]:
    out = ["## Provenance", ""]
    if every is None or "provenance" not in every.table.columns:
        return out + ["Not checked.", ""]
    df = every.table
    counts = ", ".join(f"{k}: {n}" for k, n in df["provenance"].value_counts().sort_index().items())
    out += [f"Each run's engine digest and library versions against the checkout's ({counts}): *clean-current* "
            "when its `engine_digest` (the code that can move a number, docstrings and comments dropped: "
            "`benchmark.tracking.engine`) is the checkout's, *stale* when it differs or torch, torchaudio, timm or "
            "numpy had another release; runs logged before the digest by their `git_commit`: clean-current when the "
            "engine files are unchanged since, *clean-equivalent* when every commit since that touched them is "
            "declared numerics-neutral (`results/numerics/neutral_commits.csv`), *stale* otherwise; *dirty* when "
            "trained from uncommitted code, *unknown* without a commit this repository holds. "
            + ("All of them are in the verdicts below (`--include-stale`)." if include_stale else
               "Only clean-current and clean-equivalent runs are in the verdicts, controls and leaderboards; rebuild "
               "with `--include-stale` to include the others.") + f" Every run: {_link(runs_csv, report_dir)}.", ""]
    equivalent = df[df["provenance"] == EQUIVALENT]
    if not equivalent.empty:
        by_commit = equivalent["git_commit"].value_counts().sort_index()
        out += ["Clean-equivalent runs, by the commit that trained them: "
                + ", ".join(f"`{c[:12]}` ({n})" for c, n in by_commit.items()) + ".", ""]
    others = _not_current(every)
    if others.empty:
        return out + ["Every run is clean-current or clean-equivalent.", ""]
    body = [[r["task"], r["frontend"], f"{r['hop_ms']:g}", f"{r['reduction_rate']:g}", r["backbone"], str(r["seed"]),
             r["git_commit"] or "–", r["provenance"], r["run_id"]]
            for _, r in others.sort_values(["provenance", "task", "frontend", "seed", "run_id"]).iterrows()]
    return out + [_md_table(["task", "front-end", "hop (ms)", "δ", "backbone", "seed", "git commit", "provenance",
                             "run"], body), ""]


def _numerics_md(runs: Runs) -> list[str]:
    table = numerics_table(runs.table)
    out = ["## Numerics", "",
           "Which machine computed the runs above (tags `numerics_*`): its CPU, torch's dispatch level, the intra-op "
           "threads, and the canary digest (a few seeded training steps, `diffres-bench canary`), looked up in the "
           "committed canaries (`results/numerics/canary.csv`). Runs whose digest matches a committed machine's are "
           "reproduced bit for bit there at that thread count; on a machine with another digest expect other "
           "numbers run by run and decisions that replicate (docs/reproducibility.md).", ""]
    body = [[r.numerics_cpu or "–", r.numerics_cpu_capability or "–", r.numerics_threads or "–",
             f"`{r.numerics_canary}`" if r.numerics_canary else "–", str(r.runs), r.committed_canary]
            for r in table.itertuples(index=False)]
    return out + [_md_table(["CPU", "dispatch", "threads", "canary", "runs", "committed canary of"], body), ""]


def _replication_md(replicated: pd.DataFrame | None, runs: Runs, csv: Path | None, report_dir: Path) -> list[str]:
    if replicated is None or csv is None:
        return []
    half_a, half_b = seed_halves(runs.table["seed"])
    out = ["## Replication on half the seeds", "",
           f"Every claim and control comparison decided again, by the same rule, on two disjoint halves of the "
           f"seeds (A: {', '.join(map(str, half_a)) or '–'}; B: {', '.join(map(str, half_b)) or '–'}), each half "
           "classed against the decision on all seeds and against the other half: *decided and agree* (both decided, "
           "the same verdict), *undecided in both*, *decided in one only*, *flip* (holds in one, refuted in the "
           "other); *not run at half n*: a half has < 2 pairs. "
           f"Half A against all seeds: {counts_text(replicated, half=True, column='agreement_a')}. "
           f"Half B against all seeds: {counts_text(replicated, half=True, column='agreement_b')}. "
           f"Half A against half B: {counts_text(replicated, half=True)}.", ""]
    body = [[r.source, r.task, r.treatment, r.control, f"{r.verdict_full} ({r.n_pairs_full})",
             f"{r.verdict_a} ({r.n_pairs_a})", f"{r.verdict_b} ({r.n_pairs_b})", r.agreement_a, r.agreement_b,
             r.agreement] for r in replicated.itertuples(index=False)]
    return out + [_md_table(["source", "task", "treatment", "control", "all seeds (pairs)", "half A", "half B",
                             "A vs all", "B vs all", "A vs B"], body), "", f"CSV: {_link(csv, report_dir)}", ""]


def render_markdown(suite: str, runs: Runs, lb: pd.DataFrame, claims: list[ClaimResult], summary: pd.DataFrame,
                    controls: list[ControlResult], health: Health, margin: float, margin_source: str,
                    figures: list[tuple[str, Path]], skipped: list[str], task_tables: dict[str, Path],
                    files: dict[str, Path], report_dir: Path, every: Runs | None = None,
                    include_stale: bool = False, replicated: pd.DataFrame | None = None) -> str:
    """``files``: the CSVs linked from the text, by key: comparisons, summary, controls, runs, replication.
    ``every``: all runs with their provenance (``runs`` holds those decided on)."""
    df = runs.table
    out = [f"# DiffRes benchmark report — suite `{suite}`", "", *_stale_banner(every, include_stale),
           *_banner(controls),
           f"Generated by `benchmark.report.build_report` from the MLflow experiment `{suite}`; "
           "regenerate with `diffres-bench report` (or `make report`), do not edit by hand.", "",
           *_controls_md(controls, files["controls"], report_dir),
           *_headline_md(summary, margin, margin_source, files["summary"], report_dir),
           "## Runs", "",
           f"- finished runs read: {runs.n_finished}; distinct configurations after de-duplication by "
           f"`config_hash` (latest run kept): {len(df)}; duplicates set aside (in runs.csv, `used` = false): "
           f"{runs.n_duplicates}",
           f"- runs ignored because their status is not FINISHED: {runs.n_not_finished}",
           f"- finished runs of points no longer in the suite (set aside, not read): {runs.n_outside_suite}",
           f"- tasks: {', '.join(f'`{t}` ({m})' for t, m in lb.groupby('task')['metric'].first().items())}",
           *[f"- your corpus {line}" for line in data_notes(df["task"])],
           f"- front-ends: {', '.join(sorted(df['frontend'].unique()))}",
           f"- input hops (ms): {', '.join(f'{h:g}' for h in sorted(df['hop_ms'].unique()))}; "
           f"reduction rates δ: {', '.join(f'{r:g}' for r in sorted(df['reduction_rate'].unique()))}",
           f"- backbones: {', '.join(sorted(df['backbone'].unique()))}; seeds: "
           f"{', '.join(str(s) for s in sorted(df['seed'].unique()))}; folds: "
           + (", ".join(str(f) for f in sorted(df["fold"].unique()) if f != NO_FOLD) or "none"),
           f"- device: {_counts(df['device'])}",
           f"- git commit: {_counts(df['git_commit'])}",
           f"- torch: {_counts(df['torch_version'])}; timm: {_counts(df['timm_version'])}"]
    unknown = unknown_frontends(df["frontend"])
    if unknown:
        out.append(f"- front-ends the registry does not know (family `{UNKNOWN_FAMILY}`; on the leaderboard, "
                   f"in no claim): {', '.join(unknown)}")
    if runs.extra_keys:
        out.append(f"- parameters that vary within one setting and therefore split rows: "
                   f"{', '.join(runs.extra_keys)}")
    out += ["", *_provenance_md(every, include_stale, files["runs"], report_dir),
            *_numerics_md(runs), *_health_md(health, files["runs"], report_dir)]
    reference = "/".join(registered_frontends(REFERENCE))
    out += ["## How to read the numbers", "",
            "- The metric is the test metric at the best-validation epoch (accuracy or mAP, per task).",
            "- Each row aggregates the runs of one task × backbone × front-end × input hop × δ over seeds "
            "(and folds): mean, sample std, 95 % confidence interval of the mean (Student t, n − 1 degrees "
            "of freedom), n runs. With n = 1 there is no interval.",
            "- Compute is per clip from its waveform, forward pass: filterbank (the mel STFT, or a learnable "
            "filterbank) plus front-end plus backbone (MFLOPs). *rel. cost* = that total "
            f"/ the total of `{reference}` on the mel filterbank at {BASELINE_HOP_MS:g} ms, δ = 0 (same task and "
            "backbone). "
            "Latency is the mean forward time per clip as logged by the runner.",
            "", "## Leaderboard", ""]
    for task in sorted(lb["task"].unique()):
        rows = lb[lb["task"] == task]
        out += [f"### {task} ({rows['metric'].iloc[0]})", "",
                _leaderboard_md(rows, runs.extra_keys), "", f"CSV: {_link(task_tables[task], report_dir)}", ""]
    out += ["## Figures", ""]
    for caption, path in figures:
        out += [f"**{caption}**", "", f"![{caption}]({_rel(path, report_dir)})", ""]
    if skipped:
        out += ["Not drawn:", ""] + [f"- {line}" for line in skipped] + [""]
    out += _claims_md(claims, files["comparisons"], report_dir)
    out += _replication_md(replicated, runs, files.get("replication"), report_dir)
    return "\n".join(out).rstrip("\n") + "\n"
