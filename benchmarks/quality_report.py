"""The results file of the quality benchmark and its tables: scores, mean ranks and the goals of issue 23.

The results file is JSON, `{"records": [...]}`, one record per run (set,
seed, method): its test metrics (or its error), train/test row counts,
seconds, and for kerasflow runs the model family and split it used. It is
rewritten after every run, so a benchmark stopped at any point resumes
(records with an error are run again) and `--report FILE` prints a partial table.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

METHOD_ORDER = ("defaults", "tuned", "hgb", "linear", "bundled")
ACCURACY_POINTS = 0.5  # goal: defaults never worse than HGB by more than this many accuracy points
RELATIVE_ERROR = 0.03  # ... or by more than this relative MAE/RMSE


class Results:
    """The records of a results file, saved after each added record.

    Args:
        path: The JSON file; read if it exists.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = json.loads(path.read_text())["records"] if path.exists() else []

    def done(self, name: str, seed: int, method: str) -> bool:
        """True when the run has a record without an error."""
        return any(_key(r) == (name, seed, method) and "error" not in r for r in self.records)

    def add(self, record: dict[str, Any]) -> None:
        """Adds (or replaces) a run's record and rewrites the file atomically."""
        self.records = [r for r in self.records if _key(r) != _key(record)] + [record]
        partial = self.path.with_name(self.path.name + ".part")
        partial.write_text(json.dumps({"records": self.records}, indent=1))
        os.replace(partial, self.path)


def _key(record: dict[str, Any]) -> tuple[str, int, str]:
    return record["set"], record["seed"], record["method"]


def metric_name(task: str, metric: str) -> str:
    """The reported metric: accuracy for classes, `metric` (mae or rmse) for regression."""
    return "accuracy" if task == "classification" else metric


def score(record: dict[str, Any], metric: str) -> float | None:
    """A record's reported score, or None (error, or the method does not apply)."""
    metrics = record.get("metrics") or {}
    return metrics.get(metric_name(record["task"], metric))


def progress_line(record: dict[str, Any], count: int, total: int, metric: str) -> str:
    """One run's line: set, seed, method, score (or error) and seconds."""
    value = score(record, metric)
    name = metric_name(record["task"], metric)
    shown = (f"ERROR {record['error']}" if "error" in record else
             f"{name} {value:.4f}" if value is not None else "n/a")
    extra = f"  ({record['model']}, {record['split']})" if "model" in record else ""
    return (f"[{count}/{total}] {record['set']:<18} seed {record['seed']}  {record['method']:<9}"
            f"{shown:<22}{record['seconds']:>8.1f} s{extra}")


def summarize(records: list[dict[str, Any]], metric: str) -> dict[str, dict[str, Any]]:
    """Per set: task, kind, per-method scores by seed, and the defaults' model family."""
    sets: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = sets.setdefault(record["set"], {"task": record["task"], "kind": record["kind"], "scores": {},
                                                "seconds": {}, "model": "-"})
        value = score(record, metric)
        if value is not None:
            entry["scores"].setdefault(record["method"], {})[record["seed"]] = value
            entry["seconds"].setdefault(record["method"], []).append(record["seconds"])
        if record["method"] == "defaults" and "model" in record:
            entry["model"] = f"{record['model']}/{record['split']}"
    return sets


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def cell(values: list[float] | None, task: str) -> str:
    """`mean ± sd` (or the single value, or `-`)."""
    if not values:
        return "-"
    mean, sd = mean_sd(values)
    digits = ".4f" if task == "classification" else ".4g"
    return f"{mean:{digits}}" + (f"±{sd:{'.4f' if task == 'classification' else '.2g'}}" if sd is not None else "")


def mean_ranks(entry: dict[str, Any]) -> dict[str, float]:
    """Each method's rank (1 = best, ties shared) averaged over the seeds where at least two methods scored."""
    higher = entry["task"] == "classification"
    seeds = sorted({seed for by_seed in entry["scores"].values() for seed in by_seed})
    ranks: dict[str, list[float]] = {}
    for seed in seeds:
        scored = {m: s[seed] for m, s in entry["scores"].items() if seed in s}
        if len(scored) < 2:
            continue
        for method, value in scored.items():
            better = sum((v > value) if higher else (v < value) for v in scored.values())
            ties = sum(v == value for v in scored.values())
            ranks.setdefault(method, []).append(better + (ties + 1) / 2)
    return {method: statistics.fmean(values) for method, values in ranks.items()}


def print_report(records: list[dict[str, Any]], metric: str = "mae", only: set[str] | None = None) -> None:
    """Prints the score table, the rank table and the goals."""
    sets = {name: entry for name, entry in summarize(records, metric).items() if only is None or name in only}
    if not sets:
        print("no results yet")
        return
    methods = [m for m in METHOD_ORDER if any(m in entry["scores"] for entry in sets.values())]
    print(f"\n{'set':<19}{'metric':<9}{'seeds':>5}  " + "".join(f"{m:>17}" for m in methods) + "   defaults chose")
    for name, entry in sets.items():
        seeds = len({seed for by_seed in entry["scores"].values() for seed in by_seed})
        cells = "".join(f"{cell(list(entry['scores'].get(m, {}).values()), entry['task']):>17}" for m in methods)
        print(f"{name:<19}{metric_name(entry['task'], metric):<9}{seeds:>5}  {cells}   {entry['model']}")
    print_ranks(sets, methods)
    print_seconds(sets, methods)
    print("\ngoals (issue 23):")
    for line in goal_lines(sets):
        print(f"- {line}")
    errors = [r for r in records if "error" in r and (only is None or r["set"] in only)]
    for record in errors:
        print(f"error: {record['set']} seed {record['seed']} {record['method']}: {record['error']}")


def print_ranks(sets: dict[str, dict[str, Any]], methods: list[str]) -> None:
    """Mean rank of each method per set (over seeds) and overall (over sets)."""
    per_set = {name: mean_ranks(entry) for name, entry in sets.items()}
    print(f"\n{'mean rank (1 = best)':<35}" + "".join(f"{m:>10}" for m in methods))
    for name, ranks in per_set.items():
        print(f"{name:<35}" + "".join(f"{ranks[m]:>10.2f}" if m in ranks else f"{'-':>10}" for m in methods))
    overall = {m: [ranks[m] for ranks in per_set.values() if m in ranks] for m in methods}
    print(f"{'overall':<35}" + "".join(f"{statistics.fmean(v):>10.2f}" if v else f"{'-':>10}"
                                       for v in overall.values()))


def print_seconds(sets: dict[str, dict[str, Any]], methods: list[str]) -> None:
    """Mean wall seconds per run of each method over all sets."""
    seconds = {m: [s for entry in sets.values() for s in entry["seconds"].get(m, [])] for m in methods}
    print(f"{'mean seconds per run':<35}" + "".join(f"{statistics.fmean(v):>10.1f}" if v else f"{'-':>10}"
                                                    for v in seconds.values()))


def compare(entry: dict[str, Any], method: str, other: str) -> tuple[bool, str] | None:
    """Whether `method`'s mean is at least `other`'s on a set, and the gap in words; None if either is missing."""
    scores = entry["scores"]
    if method not in scores or other not in scores:
        return None
    a, b = mean_sd(list(scores[method].values()))[0], mean_sd(list(scores[other].values()))[0]
    if entry["task"] == "classification":
        return a >= b - 1e-12, f"{(a - b) * 100:+.2f} accuracy points"
    return a <= b + 1e-12, f"{(a - b) / b:+.1%} relative error"


def within_tolerance(entry: dict[str, Any]) -> bool:
    """True when defaults are no worse than HGB by more than 0.5 accuracy points (3% relative error)."""
    a = mean_sd(list(entry["scores"]["defaults"].values()))[0]
    b = mean_sd(list(entry["scores"]["hgb"].values()))[0]
    if entry["task"] == "classification":
        return (b - a) * 100 <= ACCURACY_POINTS + 1e-9
    return (a - b) / b <= RELATIVE_ERROR + 1e-12


def goal_lines(sets: dict[str, dict[str, Any]]) -> list[str]:
    """The goals of issue 23, each with `met`/`missed` and the gaps of the misses."""
    tables = {n: e for n, e in sets.items() if e["kind"] == "table" and compare(e, "defaults", "hgb")}
    wins = [n for n, e in tables.items() if compare(e, "defaults", "hgb")[0]]
    need = math.ceil(2 * len(tables) / 3)
    verdict = "not measured" if not tables else "met" if len(wins) >= need else "missed"
    lines = [f"defaults >= HGB on >= 2/3 of the tabular sets: {len(wins)}/{len(tables)} (need {need}): {verdict}"]
    far = [f"{n} ({compare(e, 'defaults', 'hgb')[1]})" for n, e in tables.items() if not within_tolerance(e)]
    verdict = "not measured" if not tables else "met" if not far else "missed on " + ", ".join(far)
    lines.append(f"defaults never worse than HGB by > {ACCURACY_POINTS} accuracy points / {RELATIVE_ERROR:.0%} "
                 f"relative MAE/RMSE: {verdict}")
    lines.append(_every("tuned >= HGB on every set", sets, "tuned", "hgb"))
    lines.append(_every("text: defaults >= char n-gram TF-IDF + LogisticRegression", sets, "defaults", "linear",
                        kind="text"))
    lines.append(_every("image folder: defaults >= the bundled CNN config", sets, "defaults", "bundled", kind="image"))
    return lines


def _every(goal: str, sets: dict[str, dict[str, Any]], method: str, other: str, kind: str | None = None) -> str:
    """`goal: met (n sets)` or `goal: missed on set (gap), ...` over the sets where both methods scored."""
    compared = {n: compare(e, method, other) for n, e in sets.items() if kind is None or e["kind"] == kind}
    compared = {n: c for n, c in compared.items() if c is not None}
    if not compared:
        return f"{goal}: not measured"
    misses = [f"{n} ({c[1]})" for n, c in compared.items() if not c[0]]
    return f"{goal}: " + (f"met ({len(compared)} sets)" if not misses else f"missed on {', '.join(misses)}")
