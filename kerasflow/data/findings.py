"""What a data contract check reports: findings, the report, and the error that stops a run.

The rules themselves live in `kerasflow.data.contract`; this module only
holds what they produce and how it is rendered (`contract/report.json`,
`contract/report.txt`, the error message). Plain functions: no Prefect, no MLflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.data.load import DataLoadError
from kerasflow.errors import BadInputError

EXAMPLES = 5


@dataclass
class Finding:
    """One problem the contract found.

    Args:
        severity: `error` (the run stops) or `warning` (repaired, the run goes on).
        rule: Short rule name, e.g. `non_finite`, `single_class`.
        file: The file (or built-in source) the rows come from.
        column: The column concerned, or `None` for the whole file.
        rows: How many rows are affected.
        examples: A few row numbers (from 1, after the header) or values.
        message: What is wrong.
        fix: What to do about it.
    """

    severity: str
    rule: str
    file: str
    column: str | None
    rows: int
    examples: list[Any]
    message: str
    fix: str

    def __str__(self) -> str:
        several = self.column is not None and ", " in self.column  # a finding about a list of columns
        where = (f"{self.file}, columns {self.column}" if several else
                 f"{self.file}, column {self.column!r}" if self.column else self.file)
        return f"{where}: {self.message}. Fix: {self.fix}."


@dataclass
class ContractReport:
    """Every finding of one contract check, and the repaired rows.

    Args:
        findings: Errors and warnings, in the order found.
        frame: The rows after repairs (training rows, then test rows).
        test_rows: How many trailing rows of `frame` are test rows.
        dropped: Constant feature columns the model will not use.
    """

    findings: list[Finding] = field(default_factory=list)
    frame: pd.DataFrame | None = None
    test_rows: int = 0
    dropped: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """The findings that stop the run."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """The findings the run repaired and went on with."""
        return [f for f in self.findings if f.severity == "warning"]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (`contract/report.json`)."""
        return {"passed": not self.errors, "errors": len(self.errors), "warnings": len(self.warnings),
                "dropped_columns": self.dropped, "findings": [_plain(asdict(f)) for f in self.findings]}

    def summary(self) -> str:
        """The report as text, one finding per line (`contract/report.txt`)."""
        if not self.findings:
            return "data contract: passed, nothing to report"
        head = f"data contract: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        return "\n".join([head, *(f"  {f.severity}: {f}" for f in self.findings)])


class DataContractError(BadInputError):
    """Data that breaks the contract; the message lists every error.

    Args:
        report: The contract report.
    """

    label = "bad data"

    def __init__(self, report: ContractReport) -> None:
        self.report = report
        lines = "\n".join(f"  - {f}" for f in report.errors)
        super().__init__(f"the data breaks {len(report.errors)} rule(s) of the data contract "
                         f"(rows are counted from 1 after the header):\n{lines}")

    def __reduce__(self) -> tuple[type[DataContractError], tuple[ContractReport]]:
        return (type(self), (self.report,))


def require_contract(report: ContractReport) -> ContractReport:
    """Raises when the report holds errors.

    Args:
        report: A contract report.

    Returns:
        The report, when it holds no errors.

    Raises:
        DataContractError: Listing every error.
    """
    if report.errors:
        raise DataContractError(report)
    return report


def unreadable_report(error: DataLoadError) -> ContractReport:
    """The contract report of a source that cannot be read at all: one error, with its fix.

    Args:
        error: What `read_sources` raised.

    Returns:
        A failed `ContractReport`, to be logged like any other.
    """
    message = str(error)
    if "duplicate column names" in message:
        fix = "rename or remove the duplicate columns in the file's header"
    elif "is not valid" in message:
        fix = "set data.encoding to the file's encoding (the message names a likely one)"
    else:
        fix = "check data.source and data.test_source, and that the file is a complete CSV or Parquet file"
    report = ContractReport()
    report.findings.append(Finding("error", "unreadable", getattr(error, "source", ""), None, 0, [], message, fix))
    return report


def row_list(positions: Any) -> str:
    """Row numbers (from 1) of a few positions, e.g. `3, 18, 77 and 12 more`."""
    items = [int(p) + 1 for p in list(positions)]
    shown = ", ".join(map(str, items[:EXAMPLES]))
    return shown + (f" and {len(items) - EXAMPLES} more" if len(items) > EXAMPLES else "")


def plain_value(value: Any) -> Any:
    """A value as JSON-ready data: numpy scalars unwrapped, non-finite floats as text."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def _plain(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return plain_value(data) if isinstance(data, (float, np.generic)) else data
