"""`diffres-bench tasks inspect SOURCE`: what a user's corpus holds and what is wrong with it, before
anything trains. Reads the layout and every audio file's header (no decoding, nothing written): classes,
clips per split or fold, clip lengths, sample rates, label balance, and every problem found (all of
them, where building the task stops at the first kind)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from tasks.sources.corpus import TaskFileError, fold_roles, probe_all, split_problems, stratified_split
from tasks.usertask import SHOWN, bad_files, declaration, read_corpus


@dataclass(frozen=True)
class Inspection:
    text: str
    problems: tuple[str, ...]


def inspect_source(ref: str) -> Inspection:
    try:
        decl = declaration(ref)
        if decl["source"] == "hub":
            from tasks.registry import get_task

            spec = get_task(ref)
            return Inspection(f"{spec.name}: hub dataset, {spec.num_classes} classes\nsource: {spec.source}", ())
        corpus = read_corpus(decl)
    except TaskFileError as err:
        return Inspection(f"{ref}: cannot be read as a task", (str(err),))
    problems: list[str] = []
    probes = probe_all(corpus)
    try:
        bad = bad_files(decl, corpus, probes)
    except TaskFileError as err:
        problems.append(str(err))
        bad = [(rel, p.problem) for rel, p in probes.items() if p.problem]
    for rel, problem in bad[:SHOWN]:
        problems.append(f"{corpus.root / rel}: {problem}")
    if len(bad) > SHOWN:
        problems.append(f"... and {len(bad) - SHOWN} more unusable file(s)")
    dropped = {rel for rel, _ in bad}
    clips = [c for c in corpus.clips if c.rel not in dropped]
    if corpus.folds is None and any(c.split is None for c in clips):
        clips = stratified_split(clips, decl.get("split_seed", 0))
    problems += split_problems(corpus, clips)

    lengths = np.array([probes[c.rel].seconds for c in clips]) if clips else np.zeros(1)
    seconds = decl.get("clip_seconds") or corpus.clip_seconds or float(lengths.max())
    lines = [f"task:         {decl['name']} ({decl['source']} at {corpus.root})",
             f"classes:      {len(corpus.classes)} ({'multi' if corpus.multi else 'single'}-label): "
             + ", ".join(corpus.classes[:10]) + (", ..." if len(corpus.classes) > 10 else ""),
             f"clips:        {len(corpus.clips)} listed, {len(clips)} usable, {len(bad)} unusable"]
    if corpus.folds:
        per_fold = Counter(c.fold for c in clips)
        lines.append("folds:        " + ", ".join(f"{f}: {per_fold[f]}" for f in range(1, corpus.folds + 1))
                     + f"  (fold 1: {_roles(corpus.folds)})")
    else:
        per_split = Counter(c.split for c in clips)
        rule = corpus.rule or f"a seeded stratified split, split_seed {decl.get('split_seed', 0)}"
        lines.append("splits:       " + ", ".join(f"{s} {per_split[s]}" for s in ("train", "val", "test"))
                     + f"  ({rule})")
    q = np.quantile(lengths, [0.0, 0.1, 0.5, 0.9, 1.0])
    lines.append("clip length:  min {:.2f} s, p10 {:.2f}, median {:.2f}, p90 {:.2f}, max {:.2f} s".format(*q))
    origin = ("declared" if decl.get("clip_seconds") else "from the metadata" if corpus.clip_seconds
              else "the longest clip")
    lines.append(f"clip_seconds: {seconds:g} s ({origin}): {int((lengths > seconds + 1e-9).sum())} clips cropped, "
                 f"{int((lengths < seconds - 1e-9).sum())} padded")
    rates = Counter(probes[c.rel].sample_rate for c in clips)
    lines.append("sample rates: " + ", ".join(f"{r} Hz x {n}" for r, n in sorted(rates.items()))
                 + f" (resampled to {decl.get('sample_rate', 16000)} Hz)")
    counts = Counter(name for c in clips for name in c.labels)
    balance = [counts.get(name, 0) for name in corpus.classes]
    lines.append(f"label balance: {min(balance)}..{max(balance)} clips a class"
                 + (f" (ratio {max(balance) / max(min(balance), 1):.1f})" if balance else ""))
    lines += [f"  {name}: {counts.get(name, 0)}" for name in corpus.classes[:30]]
    lines.append(f"problems:     {len(problems) or 'none'}")
    lines += [f"  - {p}" for p in problems]
    return Inspection("\n".join(lines), tuple(problems))


def _roles(folds: int) -> str:
    roles = fold_roles(1, folds)
    return f"test {roles['test']}, val {roles['val']}, train {roles['train']}"
