"""The data contract: checks every tabular source passes, with or without an expectation suite.

An expectation suite (Great Expectations) checks what a user wrote down
about their data. The contract checks what every pipeline needs whatever
the data, before any training (and before TensorFlow is needed):

- the label columns exist (else the available columns and close matches
  are listed), have no missing values, and a classifier has at least two
  classes, each with enough rows for the configured split;
- test labels (`data.test_source`) were all seen in the training rows;
- numeric features hold no ±inf and nothing beyond float32's range
  (`preprocessing.non_finite`: fail, clip or missing);
- a mostly numeric column with a few text tokens (`n/a`, `abc`) is repaired
  or refused (`preprocessing.invalid_numbers`), never made categorical;
- constant features are dropped (`preprocessing.drop_constant`), mostly
  missing ones imputed, each with a warning that names it;
- a CSV file read with a detected delimiter, or whose last line is cut
  short, is reported.

Every finding names the file, the column, the number of rows, a few example
rows (counted from 1, the first row after the header) or values, and the
fix. Errors stop the run (`DataContractError`, a bad-input error); warnings
are repairs the run goes on with. Plain functions: no Prefect, no MLflow.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.data.findings import EXAMPLES, ContractReport, Finding, plain_value, row_list
from kerasflow.data.load import DataLoadError, Table, read_table
from kerasflow.features.labels import fit_labels
from kerasflow.features.tabular import FLOAT32_MAX
from kerasflow.models.families import family_of, model_outputs
from kerasflow.schemas.config import DataConfig, PipelineConfig, PreprocessingConfig, SplitConfig

MOSTLY_MISSING = 0.5
DECIMAL_COMMA = r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+(?:[eE][+-]?\d+)?"  # 12,5  1.234,5  -0,25e3
DROPPED_KEY = b"kerasflow.dropped_columns"


def read_sources(data: DataConfig) -> tuple[Table, Table | None]:
    """Reads `data.source` and `data.test_source` with the configured delimiter and encoding.

    Args:
        data: The config's `data` section.

    Returns:
        The source table and the test table (or `None`).

    Raises:
        DataLoadError: A file is missing or cannot be decoded or parsed.
    """
    options = {"delimiter": data.delimiter, "encoding": data.encoding, "decimal": data.decimal}
    test = _read_source(data.test_source, options) if data.test_source else None
    return _read_source(data.source, options), test


def _read_source(source: str, options: dict[str, Any]) -> Table:
    try:
        return read_table(source, **options)
    except DataLoadError as exc:
        exc.source = str(source)  # the file a contract report names
        raise


def check_contract(config: PipelineConfig, source: Table, test: Table | None = None) -> ContractReport:
    """Checks raw rows against the data contract and repairs what the config allows.

    Args:
        config: The pipeline config (`data`, `split`, `preprocessing`, `model`).
        source: The training source as read.
        test: The `data.test_source` rows as read. Default `None`.

    Returns:
        The `ContractReport`, whose `frame` holds the repaired rows (the
        test rows last). Call `require_contract` to stop on errors.
    """
    report = ContractReport()
    tables = [t for t in (source, test) if t is not None]
    for table in tables:
        report.findings += _reading_findings(table)
    labels = label_columns(config)
    missing = _missing_columns(config, tables, labels)
    report.findings += missing
    if test is not None and not missing:
        report.findings += _test_columns(source, test)
    if any(f.severity == "error" for f in report.findings):
        return report
    frames = [_check_features(config, t, report, training=t is source) for t in tables]
    report.frame = pd.concat(frames, ignore_index=True) if test is not None else frames[0]
    report.test_rows = len(test.frame) if test is not None else 0
    for column, task in labels:
        report.findings += _label_findings(config, report, source, test, column, task)
    return report


def label_columns(config: PipelineConfig) -> list[tuple[str, str]]:
    """The label columns a config trains on, with their configured task.

    Args:
        config: The pipeline config.

    Returns:
        `(column, task)` pairs: one per output head read from a column
        (heads computed from text statistics have no label column), else
        `data.target`.
    """
    outputs = model_outputs(config.model)
    if outputs:
        return [(o.target, o.task) for o in outputs if not o.statistic]
    return [(config.data.target, config.data.task)]


def feature_columns(config: PipelineConfig, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The columns a config reads as features, and those it declares categorical.

    Args:
        config: The pipeline config.
        frame: The raw rows.

    Returns:
        `(features, categorical)`.
    """
    listed = family_of(config.model).feature_columns  # columns the `model` section lists (text, functional)
    if listed is not None:
        return listed(config.model)
    targets = {column for column, _ in label_columns(config)}
    names = config.data.features or [c for c in frame.columns if c not in targets]
    return list(names), list(config.data.categorical or [])


def dropped_metadata(dropped: list[str]) -> dict[bytes, bytes]:
    """The raw Parquet schema metadata that records the columns the model must not use.

    Args:
        dropped: Column names.

    Returns:
        Metadata for `kerasflow.data.holdout.save_raw` (empty when none).
    """
    return {DROPPED_KEY: json.dumps(dropped).encode()} if dropped else {}


def dropped_columns(path: str | Path) -> list[str]:
    """The columns the contract dropped, from a raw Parquet file's metadata.

    Args:
        path: A Parquet file written by the load step.

    Returns:
        The dropped column names (empty when none).
    """
    import pyarrow.parquet as pq  # deferred: only the steps that read raw Parquet need it

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[DROPPED_KEY]) if DROPPED_KEY in meta else []


# --- reading and columns ---------------------------------------------------------------------------


def _reading_findings(table: Table) -> list[Finding]:
    found = []
    if table.sniffed:
        found.append(Finding("warning", "delimiter", table.source, None, len(table.frame), [repr(table.delimiter)],
                             f"read with delimiter {table.delimiter!r}: with commas it parsed as one column",
                             f"set data.delimiter: {table.delimiter!r} to make this explicit"))
    if table.truncated:
        line, fields = table.truncated
        found.append(Finding("error", "truncated", table.source, None, 1, [len(table.frame)],
                             f"the file looks truncated: its last line (line {line}, data row {len(table.frame)}) "
                             f"has {fields} of {table.frame.shape[1]} fields",
                             "copy or export the file again completely, or delete the incomplete last line"))
    return found


def _missing_columns(config: PipelineConfig, tables: list[Table], labels: list[tuple[str, str]]) -> list[Finding]:
    found = []
    for table in tables:
        features, categorical = feature_columns(config, table.frame)
        wanted = {s.column: "evaluation.slices" for s in config.evaluation.slice_specs}
        wanted |= {c: "label" for c, _ in labels} | {c: "feature" for c in [*features, *categorical]}
        available = [str(c) for c in table.frame.columns]
        for column, role in wanted.items():
            if column not in table.frame.columns:
                found.append(_missing_column(table, column, role, available))
    return found


def _missing_column(table: Table, column: str, role: str, available: list[str]) -> Finding:
    close = difflib.get_close_matches(column, available, n=3, cutoff=0.6)
    near = f"; close matches: {', '.join(close)}" if close else ""
    shown = ", ".join(available[:30]) + (f" and {len(available) - 30} more" if len(available) > 30 else "")
    hint = (" (the file parsed as a single column: check data.delimiter)" if len(available) == 1 else "")
    return Finding("error", "missing_column", table.source, column, len(table.frame), close,
                   f"the {role} column is not in the file{hint}; available columns: {shown}{near}",
                   "fix the column name in the config (data.target, data.features, model inputs/outputs, "
                   "evaluation.slices) "
                   "or in the file")


def _test_columns(source: Table, test: Table) -> list[Finding]:
    missing = [str(c) for c in source.frame.columns if c not in test.frame.columns]
    extra = [str(c) for c in test.frame.columns if c not in source.frame.columns]
    if not missing and not extra:
        return []
    return [Finding("error", "test_columns", test.source, None, len(test.frame), missing + extra,
                    f"data.test_source must have the columns of data.source: missing {missing}, unexpected {extra}",
                    "export the test file with the same columns as the training file")]


# --- features -------------------------------------------------------------------------------------


def _check_features(config: PipelineConfig, table: Table, report: ContractReport, training: bool = True) -> pd.DataFrame:
    """Checks and repairs the feature columns of one table; returns the repaired rows.

    Constant columns are judged on the training source only: a column that
    happens to be constant in a small test file still feeds the model.
    """
    frame = table.frame.copy()
    features, categorical = feature_columns(config, frame)
    present = [c for c in features if c in frame.columns]
    numeric = [c for c in present if c not in categorical]
    for column in numeric:
        frame[column] = _repair_numbers(config, table.source, frame[column], report)
    if training and config.data.image is None:  # pixel tables have constant border pixels by nature
        _note_constant(config, table, frame, present, report)
    for column in present:
        _note_missing(table, frame[column], report)
    return frame


def _repair_numbers(config: PipelineConfig, file: str, series: pd.Series, report: ContractReport) -> pd.Series:
    if not _is_number_dtype(series):
        series = _repair_tokens(config, file, series, report)
    if not _is_number_dtype(series):
        return series
    return _repair_non_finite(config.preprocessing, file, series, report)


def _repair_tokens(config: PipelineConfig, file: str, series: pd.Series, report: ContractReport) -> pd.Series:
    """A text column whose values are mostly numbers: the other tokens become missing, or an error."""
    present = series.dropna()
    codes, uniques = pd.factorize(present)  # each distinct value parsed once
    numbers = pd.to_numeric(pd.Series(uniques, dtype=object).astype(str).str.strip(), errors="coerce").notna()
    parsed = numbers.to_numpy()[codes]
    if present.empty or parsed.mean() <= 0.5:
        _note_decimal_commas(config.data, file, series, present, report)
        return series  # text or categorical data; the feature step reports a non-numeric column
    bad = present[~parsed]
    if bad.astype(str).str.strip().str.fullmatch(DECIMAL_COMMA).mean() > 0.5:  # 3, 3,5, 4: decimal commas
        _note_decimal_commas(config.data, file, series, bad, report)
        return series
    tokens = sorted({str(v) for v in bad})[:10]
    fail = config.preprocessing.invalid_numbers == "fail"
    message = (f"{len(bad)} of {len(series)} values are not numbers in a numeric column "
               f"(tokens {', '.join(repr(t) for t in tokens)}; rows {row_list(bad.index)})")
    fix = ("clean the file, or set preprocessing.invalid_numbers: missing to treat them as missing values"
           if fail else "treated as missing values (imputed); clean the file, or list the column under "
                        "data.categorical if it really is categorical")
    report.findings.append(Finding("error" if fail else "warning", "invalid_numbers", file, str(series.name),
                                   len(bad), tokens, message, fix))
    return pd.to_numeric(series.astype(str).str.strip().where(series.notna()), errors="coerce")


def _note_decimal_commas(data: DataConfig, file: str, series: pd.Series, present: pd.Series,
                         report: ContractReport) -> None:
    """A text column whose values are mostly numbers written with a decimal comma (`12,5`): refused, never text."""
    if data.decimal == "," or present.empty:
        return
    uniques = pd.Series(pd.unique(present.astype(str).str.strip()))
    comma = uniques.str.fullmatch(DECIMAL_COMMA)
    if comma.mean() <= 0.5:
        return
    examples = uniques[comma].head(EXAMPLES).tolist()
    thousands = bool(uniques[comma].str.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+").all())
    rows = int(present.astype(str).str.strip().str.fullmatch(DECIMAL_COMMA).sum())
    message = (f"{rows} values are numbers written with a comma (e.g. {', '.join(map(repr, examples))}), "
               "which a decimal point would read as text")
    fix = "set data.decimal: ',' if the comma is the decimal mark, or list the column under data.categorical"
    if thousands:  # 1,234: a decimal comma, or a thousands separator?
        message += "; every one has three digits after the comma, so it may be a thousands separator"
        fix = ("remove the thousands separators from the export if they are; " + fix)
    report.findings.append(Finding("error", "decimal_comma", file, str(series.name), rows, examples, message, fix))


def _repair_non_finite(preprocessing: PreprocessingConfig, file: str, series: pd.Series, report: ContractReport) -> pd.Series:
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isinf(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)
    if not bad.any():
        return series
    policy = preprocessing.non_finite
    examples = [plain_value(v) for v in pd.unique(values[bad])[:EXAMPLES]]
    message = (f"{int(bad.sum())} value(s) are infinite or beyond float32's range ±{FLOAT32_MAX:.2e} "
               f"(e.g. {', '.join(map(str, examples))}; rows {row_list(series.index[bad])})")
    if policy == "fail":
        report.findings.append(Finding("error", "non_finite", file, str(series.name), int(bad.sum()), examples,
                                       message, "fix the values, or set preprocessing.non_finite: missing (impute "
                                               "them) or clip (clip them to the column's finite range)"))
        return series
    finite = values[~bad & ~np.isnan(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    repaired = np.where(bad, np.nan, values) if policy == "missing" else np.where(bad, np.clip(values, low, high),
                                                                                  values)
    done = "treated as missing (imputed)" if policy == "missing" else f"clipped to [{low:g}, {high:g}]"
    report.findings.append(Finding("warning", "non_finite", file, str(series.name), int(bad.sum()), examples,
                                   message, f"{done} by preprocessing.non_finite: {policy}"))
    return pd.Series(repaired, index=series.index, name=series.name)


def _is_constant(series: pd.Series) -> bool:
    """True when every value equals the first (all missing counts as constant; missing and a value does not)."""
    if series.empty:
        return True
    first = series.iloc[0]
    if pd.isna(first):
        return bool(series.isna().all())
    return bool((series == first).all())


def _note_constant(config: PipelineConfig, table: Table, frame: pd.DataFrame, present: list[str],
                   report: ContractReport) -> None:
    constant = [c for c in present if _is_constant(frame[c])]
    if not constant:
        return
    drop = config.preprocessing.drop_constant and not config.data.features and family_of(config.model).tabular
    if drop:
        report.dropped = sorted(set(report.dropped) | set(constant), key=list(frame.columns).index)
    shown = ", ".join(constant[:12]) + (f" and {len(constant) - 12} more" if len(constant) > 12 else "")
    done = "dropped: the model does not use them" if drop else "kept (listed in data.features)"
    report.findings.append(Finding("warning", "constant_columns", table.source, shown, len(frame),
                                   [plain_value(frame[c].iloc[0]) for c in constant[:EXAMPLES]],
                                   f"{len(constant)} column(s) hold a single value and carry no information; {done}",
                                   "remove them from the file or from data.features"))


def _note_missing(table: Table, series: pd.Series, report: ContractReport) -> None:
    share = float(series.isna().mean())
    if MOSTLY_MISSING < share < 1.0:
        report.findings.append(Finding("warning", "mostly_missing", table.source, str(series.name),
                                       int(series.isna().sum()), [], f"{share:.0%} of the values are missing; "
                                       "they are imputed from the training rows (preprocessing.impute)",
                                       "check the export, or leave the column out of data.features"))


# --- labels ---------------------------------------------------------------------------------------


def _label_findings(config: PipelineConfig, report: ContractReport, source: Table, test: Table | None, column: str,
                    task: str) -> list[Finding]:
    frame, n_train = report.frame, len(report.frame) - report.test_rows
    labels = frame[column]
    missing = labels.isna()
    found = [_label_missing(source, test, labels, n_train)] if missing.any() else []
    train = labels.iloc[:n_train].dropna()
    if task == "auto" and not train.empty:
        task = fit_labels(train, "auto").task
    if task == "regression":
        return found + _regression_labels(source, test, labels[~missing], column, n_train)
    if found:
        return found
    found = _class_counts(config.split, config.data.test_source, source, train, column)
    if test is not None:
        found += _unseen_test_labels(test, train, labels.iloc[n_train:], column)
    return found


def _label_missing(source: Table, test: Table | None, labels: pd.Series, n_train: int) -> Finding:
    rows = np.flatnonzero(labels.isna().to_numpy())
    in_test = rows >= n_train
    file = test.source if test is not None and in_test.all() else source.source
    local = rows - n_train if file != source.source else rows
    return Finding("error", "missing_label", file, str(labels.name), len(rows), [int(r) + 1 for r in local[:5]],
                   f"{len(rows)} row(s) have no label (rows {row_list(local)})",
                   "fill in the labels, or remove those rows")


def _regression_labels(source: Table, test: Table | None, labels: pd.Series, column: str,
                       n_train: int) -> list[Finding]:
    """Regression labels (missing ones left out) that are not finite float32 numbers, per file, rows by their place in it."""
    values = pd.to_numeric(labels, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)
    rows = labels.index[bad].to_numpy()
    found = []
    for table, local in ((source, rows[rows < n_train]), (test, rows[rows >= n_train] - n_train)):
        if table is not None and local.size:
            found.append(Finding("error", "non_finite_label", table.source, column, int(local.size),
                                 [int(r) + 1 for r in local[:EXAMPLES]],
                                 f"{local.size} regression label(s) are not finite numbers (rows {row_list(local)})",
                                 "fix or remove those rows"))
    return found


def _class_counts(split: SplitConfig, test_source: str | None, source: Table, train: pd.Series, column: str) -> list[Finding]:
    counts = train.astype(str).value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else None
        return [Finding("error", "single_class", source.source, column, len(train), [only],
                        f"every training row has the label {only!r}: a classifier needs at least 2 classes",
                        "check the export (a filter may have kept one class), or set data.task: regression "
                        "if the column is a quantity")]
    need = _members_needed(split, test_source)
    rare = counts[counts < need]
    if rare.empty:
        return []
    classes = ", ".join(f"{name!r} ({n} row{'s' if n != 1 else ''})" for name, n in rare.items())
    return [Finding("error", "rare_class", source.source, column, int(rare.sum()), rare.index.tolist()[:EXAMPLES],
                    f"class(es) {classes} have fewer than the {need} rows per class that a stratified "
                    f"{split.kind} split needs",
                    "add rows of those classes, remove them, or set split.stratify: false")]


def _members_needed(split: SplitConfig, test_source: str | None) -> int:
    """Rows per class the stratified splitters need: one per partition they cut."""
    if not split.stratify:
        return 1
    test_cut = 0 if test_source or split.test_fraction == 0 else 1
    if split.kind == "kfold":
        return split.folds + test_cut
    return 1 + test_cut + (1 if split.val_fraction > 0 else 0)


def _unseen_test_labels(test: Table, train: pd.Series, labels: pd.Series, column: str) -> list[Finding]:
    seen = set(train.astype(str))
    tokens = labels.astype(str).reset_index(drop=True)
    unseen = ~tokens.isin(seen)
    if not unseen.any():
        return []
    names = sorted(set(tokens[unseen]))
    return [Finding("error", "unseen_test_label", test.source, column, int(unseen.sum()), names[:EXAMPLES],
                    f"{int(unseen.sum())} test row(s) have labels never seen in training "
                    f"({', '.join(map(repr, names[:10]))}; rows {row_list(np.flatnonzero(unseen))})",
                    "add training rows of those classes, or remove them from the test file")]


# --- helpers --------------------------------------------------------------------------------------


def _is_number_dtype(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
