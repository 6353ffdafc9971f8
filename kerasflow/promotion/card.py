"""A model card per registered version, as plain data and Markdown.

In the manner of the Model Card Toolkit: what the model is for, the data it
learned from, how well it does (with intervals and slices when the run
logged them), the baseline it was compared with, the design lint's
findings, the gate and infra-validation decisions, and its lineage. The
card is built from what the version's run recorded (`build_card` takes the
run's tags, metrics, params and a few JSON artifacts, read back by
`kerasflow.tracking.cards`), so a feature that logs such a record feeds
the card without touching it. Its first lines (`card_head`) are the
version's description in the registry.

This module imports neither MLflow nor Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kerasflow.promotion.infra import DETAILS_TAG

SPLIT_SIZES = ("train_rows", "val_rows", "test_rows")
TITLE = "# Model card: "
DESCRIPTION_LIMIT = 5000  # MLflow's limit on a model version's description


@dataclass
class RunRecord:
    """What a version's run recorded, as read back from the store.

    Args:
        run_id: The run.
        tags: Its tags.
        metrics: Its latest metric values.
        params: Its params.
        artifacts: Parsed artifacts by path, those present among
            `kerasflow.tracking.cards.CARD_SOURCES` (JSON parsed, text as
            text).
        dataset_rows: Rows of its logged input dataset, if any.
        version_tags: The registered version's tags.
        aliases: The registered model's aliases, `{alias: version}`.
    """

    run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    dataset_rows: int | None = None
    version_tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


def build_card(name: str, version: str, record: RunRecord) -> dict[str, Any]:
    """Assembles the card of a registered version from its run's records.

    Sections with nothing recorded (intervals, slices, a baseline) are left
    out rather than shown empty.

    Args:
        name: Registered model name.
        version: The version.
        record: What the version's run recorded.

    Returns:
        The card as JSON-ready data (`model_card.json`).
    """
    config = record.artifacts.get("config/config.yaml") or {}
    card: dict[str, Any] = {
        "model": {"name": name, "version": str(version), "run_id": record.run_id,
                  "aliases": sorted(a for a, v in record.aliases.items() if str(v) == str(version))},
        "intended_use": config.get("description"),
        "data": _data(record, config),
        "metrics": _metrics(record.metrics),
        "decisions": _decisions(record),
        "lineage": _lineage(record, version),
    }
    slices = record.artifacts.get("evaluation/slices.json")
    if slices:
        card["slices"] = _table_rows(slices)
    baseline = {k.removeprefix("baseline/"): v for k, v in record.metrics.items() if k.startswith("baseline/")}
    if baseline or "baseline.model" in record.params:
        card["baseline"] = {"model": record.params.get("baseline.model"), "metrics": baseline,
                            "rows": record.params.get("baseline.rows"),
                            "sampled_from": record.params.get("baseline.sampled_from")}
    lint = record.artifacts.get("lint/report.json")
    if lint is not None:
        card["lint"] = {"counts": lint.get("counts", {}),
                        "findings": [_finding_line(f) for f in lint.get("findings", [])]}
    return card


def render_card(card: dict[str, Any]) -> str:
    """Renders a card as Markdown: its head (the version description), then one section per topic.

    Args:
        card: `build_card`'s result.

    Returns:
        The Markdown text (`model_card.md`).
    """
    model = card["model"]
    lines = [head_text(card), "", f"{TITLE}{model['name']} v{model['version']}", ""]
    lines += ["## Intended use", "", card.get("intended_use") or "Not stated (set `description:` in the config).", ""]
    lines += _data_lines(card["data"])
    lines += _metric_lines(card["metrics"])
    if "slices" in card:
        lines += ["## Slices", "", *_markdown_table(card["slices"]), ""]
    if "baseline" in card:
        lines += _baseline_lines(card["baseline"], card["metrics"])
    if "lint" in card:
        lint = card["lint"]
        counts = ", ".join(f"{n} {s}" for s, n in lint["counts"].items() if n) or "no findings"
        lines += ["## Design lint", "", counts, "", *[f"- {f}" for f in lint["findings"]], ""]
    lines += _decision_lines(card["decisions"])
    lines += ["## Lineage", "", *[f"- {k.replace('_', ' ').capitalize()}: {v}"
                                  for k, v in card["lineage"].items() if v is not None], ""]
    return "\n".join(lines)


def head_text(card: dict[str, Any]) -> str:
    """Returns the card's first lines: the gate's decision, the infra verdict, the intended use."""
    decisions = card["decisions"]
    gate = (decisions.get("gate") or "Gate decision: not recorded.").strip()
    lines = [gate]
    infra = decisions.get("infra_details")
    if infra and infra not in gate:
        lines.append(infra)
    if card.get("intended_use"):
        lines.append(f"Intended use: {card['intended_use']}")
    return "\n".join(lines)


def card_head(markdown: str) -> str:
    """Returns the lines of a card before its title, cut to a version description's limit."""
    head = markdown.split(f"\n\n{TITLE}", 1)[0].strip()
    return head if len(head) <= DESCRIPTION_LIMIT else head[:DESCRIPTION_LIMIT - 3] + "..."


def _data(record: RunRecord, config: dict[str, Any]) -> dict[str, Any]:
    data_section = config.get("data") or {}
    contract = record.artifacts.get("contract/report.json")
    per_class = record.artifacts.get("evaluation/per_class.json")
    rows = _count(record, "data.rows")
    rows = record.dataset_rows if rows is None else rows
    return {
        "source": record.tags.get("kerasflow.data_source") or data_section.get("source"),
        "test_source": record.tags.get("kerasflow.test_source"),
        "fingerprint": record.tags.get("kerasflow.data_fingerprint"),
        "rows": int(rows) if rows is not None else None,
        "split": {k: int(count) for k in SPLIT_SIZES if (count := _count(record, f"split.{k}")) is not None},
        "target": data_section.get("target"),
        "task": data_section.get("task"),
        "classes": [str(r.get("class")) for r in _table_rows(per_class)] if per_class else None,
        "contract": None if contract is None else {
            "passed": contract.get("passed"), "errors": contract.get("errors"), "warnings": contract.get("warnings"),
            "findings": [_finding_line(f) for f in contract.get("findings", [])]},
    }


def _count(record: RunRecord, name: str) -> float | None:
    """A count the run logged as a param (`data.rows`), or as a metric (`data/rows`) by earlier runs."""
    if name in record.params:
        return float(record.params[name])
    return record.metrics.get(name.replace(".", "/", 1))


def _metrics(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for key, value in sorted(metrics.items()):
        if not key.startswith("test/"):
            continue
        name = key.removeprefix("test/")
        for bound in ("ci_low", "ci_high"):
            if name.endswith(f".{bound}"):
                found.setdefault(name.removesuffix(f".{bound}"), {})[bound] = value
                break
        else:
            found.setdefault(name, {})["value"] = value
    return {k: v for k, v in found.items() if "value" in v}


def _decisions(record: RunRecord) -> dict[str, Any]:
    infra = record.artifacts.get("infra/report.json")
    return {
        "gate": record.artifacts.get("gate/description.txt"),
        "blessed": record.version_tags.get("kerasflow.blessed"),
        "outcome": record.tags.get("kerasflow.decision"),
        "infra": record.version_tags.get("kerasflow.infra") or record.tags.get("kerasflow.infra"),
        "infra_details": record.version_tags.get(DETAILS_TAG),
        "infra_report": infra,
    }


def _lineage(record: RunRecord, version: str) -> dict[str, Any]:
    tags = record.tags
    parent = tags.get("kerasflow.champion_version")
    if parent in (None, "none"):
        current = record.aliases.get("champion")
        parent = current if current and str(current) != str(version) else None
    return {"training_run": record.run_id, "prefect_flow_run": tags.get("prefect.flow_run_id"),
            "git_commit": tags.get("mlflow.source.git.commit"), "config_hash": tags.get("kerasflow.config_hash"),
            "parent_champion": f"v{parent}" if parent else None}


def _data_lines(data: dict[str, Any]) -> list[str]:
    lines = ["## Data", ""]
    for label, key in (("Source", "source"), ("Test source", "test_source"), ("Fingerprint", "fingerprint")):
        if data.get(key):
            lines.append(f"- {label}: `{data[key]}`")
    if data.get("rows") is not None:
        sizes = ", ".join(f"{k.removesuffix('_rows')} {v}" for k, v in data["split"].items())
        lines.append(f"- Rows: {data['rows']}" + (f" ({sizes})" if sizes else ""))
    if data.get("target"):
        task = f" ({data['task']})" if data.get("task") not in (None, "auto") else ""
        lines.append(f"- Target: `{data['target']}`{task}")
    if data.get("classes"):
        lines.append(f"- Classes ({len(data['classes'])}): {', '.join(data['classes'][:50])}")
    contract = data.get("contract")
    if contract is not None:
        verdict = "passed" if contract.get("passed") else "failed"
        lines.append(f"- Data contract: {verdict}, {contract.get('errors', 0)} error(s), "
                     f"{contract.get('warnings', 0)} warning(s)")
        lines += [f"  - {f}" for f in contract["findings"]]
    return [*lines, ""]


def _metric_lines(metrics: dict[str, dict[str, float]]) -> list[str]:
    shown = {k: v for k, v in metrics.items() if not k.startswith("class.")}
    intervals = any("ci_low" in v for v in shown.values())
    lines = ["## Test metrics", ""]
    if not shown:
        return [*lines, "No test metrics were logged.", ""]
    lines += ["| metric | value |" + (" interval |" if intervals else ""),
              "|---|---|" + ("---|" if intervals else "")]
    for name, v in shown.items():
        ci = f" {_num(v['ci_low'])} … {_num(v['ci_high'])} |" if "ci_low" in v and "ci_high" in v else " |"
        lines.append(f"| {name} | {_num(v['value'])} |" + (ci if intervals else ""))
    if len(shown) < len(metrics):
        lines += ["", "Per-class scores: the run's `evaluation/per_class.json`."]
    return [*lines, ""]


def _baseline_lines(baseline: dict[str, Any], metrics: dict[str, dict[str, float]]) -> list[str]:
    lines = ["## Baseline", ""]
    if baseline.get("model"):
        sample = (f", fitted on a seeded sample of {int(baseline['rows']):,} of {int(baseline['sampled_from']):,} "
                  "training rows" if baseline.get("sampled_from") and baseline.get("rows") else "")
        lines.append(f"Baseline model: `{baseline['model']}`{sample}.")
        lines.append("")
    if baseline["metrics"]:
        lines += ["| metric | baseline | model |", "|---|---|---|"]
        for name, value in sorted(baseline["metrics"].items()):
            model = metrics.get(name, {}).get("value")
            lines.append(f"| {name} | {_num(value)} | {_num(model) if model is not None else '-'} |")
    return [*lines, ""]


def _decision_lines(decisions: dict[str, Any]) -> list[str]:
    lines = ["## Decisions", "", "### Gate", "", "```text", (decisions.get("gate") or "not recorded").strip(), "```"]
    if decisions.get("outcome"):
        lines += ["", f"Champion/challenger outcome: {decisions['outcome']}."]
    lines += ["", "### Infra validation", ""]
    lines.append(decisions.get("infra_details") or f"Infra validation: {decisions.get('infra') or 'not run'}.")
    return [*lines, ""]


def _table_rows(table: Any) -> list[dict[str, Any]]:
    """Rows of a table artifact: MLflow's `log_table` JSON (`columns`, `data`) or a list of records."""
    if isinstance(table, dict) and "columns" in table and "data" in table:
        return [dict(zip(table["columns"], row)) for row in table["data"]]
    return list(table) if isinstance(table, list) else []


def _markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["No slices."]
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_num(row.get(c)) if isinstance(row.get(c), float) else str(row.get(c))
                                       for c in columns) + " |")
    return lines


def _finding_line(finding: Any) -> str:
    if not isinstance(finding, dict):
        return str(finding)
    where = finding.get("path") or finding.get("column") or finding.get("rule") or ""
    message = finding.get("message") or finding.get("problem") or ""
    severity = finding.get("severity", "")
    if finding.get("fix"):
        message = f"{message}. Fix: {finding['fix']}"
    return " ".join(part for part in (f"{severity}:" if severity else "", f"{where}:" if where else "", message)
                    if part).strip() or str(finding)


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
