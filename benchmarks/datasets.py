"""Real tabular benchmark sets, fetched from Debian's R data packages and exported as CSV.

The sets come from two Debian packages that carry R data sets:
`r-cran-mlbench` (UCI classics: Sonar, Ionosphere, Glass, ...) and
`r-cran-modeldata` (ames housing, credit_data, attrition, ...). They are
downloaded with `apt-get download` (no install, no R needed), unpacked with
`dpkg -x`, and read with the `rdata` package from PyPI:

    /work/main/.venv/bin/pip install rdata      # or: pip install rdata (the one extra dependency)

mlbench keeps one `.rda` file per set; modeldata keeps all sets in R's
lazy-load database (`Rdata.rdx` index + `Rdata.rdb` blobs, each an
xz/LZMA2-compressed R serialization), which this module reads directly.

Each set is written once to `$KERASFLOW_BENCH_DATA/csv/<name>.csv` (default
`~/.cache/kerasflow-bench`), with the target column named in `DATASETS`.
Cleaning is minimal and stated per set: identifier columns and leaking
targets are dropped, factors whose levels are all numbers (mlbench's
BreastCancer and Ionosphere) become numbers, and column names are made
plain identifiers (`Sc.Var.Maxis` -> `Sc_Var_Maxis`).

Usage: python benchmarks/datasets.py [NAME ...] [--refresh]
(prints rows, numeric/categorical column counts, task and file of every set).
"""

from __future__ import annotations

import argparse
import bz2
import lzma
import os
import re
import struct
import subprocess
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

CACHE = Path(os.environ.get("KERASFLOW_BENCH_DATA", Path.home() / ".cache" / "kerasflow-bench"))
PACKAGES = {"mlbench": "r-cran-mlbench", "modeldata": "r-cran-modeldata"}
R_LIBRARY = Path("usr/lib/R/site-library")


@dataclass(frozen=True)
class BenchmarkSet:
    """One benchmark table: where it lives in the R packages and what it predicts.

    Attributes:
        name: The CSV's name.
        package: `mlbench` or `modeldata`.
        r_name: The R object's name.
        target: The label column.
        drop: Columns removed (identifiers, leaking targets).
        note: What the set is.
    """

    name: str
    package: str
    r_name: str
    target: str
    drop: tuple[str, ...] = field(default=())
    note: str = ""


DATASETS = [
    BenchmarkSet("ames", "modeldata", "ames", "Sale_Price", note="Ames housing prices (De Cock)"),
    BenchmarkSet("credit_data", "modeldata", "credit_data", "Status", note="credit scoring, good/bad"),
    BenchmarkSet("attrition", "modeldata", "attrition", "Attrition", note="IBM HR employee attrition"),
    BenchmarkSet("mlc_churn", "modeldata", "mlc_churn", "churn", note="telecom customer churn"),
    BenchmarkSet("concrete", "modeldata", "concrete", "compressive_strength", note="concrete strength (Yeh)"),
    BenchmarkSet("satellite", "mlbench", "Satellite", "classes", note="Landsat pixels, 6 soil classes"),
    BenchmarkSet("vehicle", "mlbench", "Vehicle", "Class", note="vehicle silhouettes, 4 classes"),
    BenchmarkSet("sonar", "mlbench", "Sonar", "Class", note="sonar returns, mine/rock"),
    BenchmarkSet("ionosphere", "mlbench", "Ionosphere", "Class", note="radar returns, good/bad"),
    BenchmarkSet("pima_diabetes", "mlbench", "PimaIndiansDiabetes2", "diabetes",
                 note="Pima diabetes, impossible zeros as missing"),
    BenchmarkSet("glass", "mlbench", "Glass", "Type", note="glass identification, 6 classes"),
    BenchmarkSet("breast_cancer", "mlbench", "BreastCancer", "Class", drop=("Id",),
                 note="Wisconsin breast cancer (original), benign/malignant"),
    BenchmarkSet("boston_housing", "mlbench", "BostonHousing2", "cmedv", drop=("medv", "tract"),
                 note="Boston housing, corrected median value"),
]


def _unpacked(package: str, refresh: bool = False) -> Path:
    """Downloads and unpacks one Debian R data package into the cache, once.

    Args:
        package: `mlbench` or `modeldata`.
        refresh: Download and unpack again.

    Returns:
        The package's R library folder (holding `data/`).

    Raises:
        RuntimeError: If `apt-get download` fails (e.g. no package lists: run `apt-get update`).
    """
    library = CACHE / "root" / R_LIBRARY / package
    if library.is_dir() and not refresh:
        return library
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "download", PACKAGES[package]], cwd=debs, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"apt-get download {PACKAGES[package]} failed (run `apt-get update` first?):\n{done.stderr}")
    deb = max(debs.glob(f"{PACKAGES[package]}_*.deb"), key=lambda path: path.stat().st_mtime)
    subprocess.run(["dpkg", "-x", str(deb), str(CACHE / "root")], check=True)
    return library


def _rdata() -> Any:
    """The `rdata` package, with a clear message when it is missing."""
    try:
        import rdata
    except ModuleNotFoundError:
        sys.exit("the benchmark data needs the `rdata` package: pip install rdata")
    return rdata


def _decompress(blob: bytes) -> bytes:
    """Decompresses one value of an R lazy-load database.

    A value is a 4-byte big-endian length, then (for R's compression levels
    2 and 3) one type byte: `Z` raw LZMA2, `2` bzip2, `0` stored; level 1 is
    plain zlib right after the length.
    """
    kind, body = blob[4:5], blob[5:]
    if kind == b"Z":
        return lzma.decompress(body, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 26}])
    if kind == b"2":
        return bz2.decompress(body)
    if kind == b"0":
        return body
    data = zlib.decompress(blob[4:])
    if len(data) != struct.unpack(">I", blob[:4])[0]:
        raise ValueError("corrupt lazy-load value")
    return data


def read_r_object(package: str, r_name: str, refresh: bool = False) -> pd.DataFrame:
    """Reads one data set of an R package as a DataFrame.

    Args:
        package: `mlbench` or `modeldata`.
        r_name: The R object's name.
        refresh: Download and unpack the package again.

    Returns:
        The data frame, R factors as pandas categoricals.
    """
    rdata = _rdata()
    data = _unpacked(package, refresh) / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that `.rdx` is not an `.rds` extension
        if (data / f"{r_name}.rda").exists():
            return rdata.conversion.convert(rdata.parser.parse_file(data / f"{r_name}.rda"))[r_name]
        index = rdata.conversion.convert(rdata.parser.parse_file(data / "Rdata.rdx"))
        offset, length = (int(value) for value in index["variables"][r_name])
        with open(data / "Rdata.rdb", "rb") as file:
            file.seek(offset)
            blob = file.read(length)
        return rdata.conversion.convert(rdata.parser.parse_data(_decompress(blob)))


def _numeric_levels(column: pd.Series) -> pd.Series:
    """A factor whose levels are all numbers, as numbers; any other column unchanged."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column
    converted = pd.to_numeric(column.astype("string"), errors="coerce")
    return converted if converted.notna().sum() == column.notna().sum() else column


def clean(frame: pd.DataFrame, spec: BenchmarkSet) -> pd.DataFrame:
    """Drops the set's identifier and leaking columns, makes numeric factors numbers and names plain.

    Args:
        frame: The R data set.
        spec: Its `BenchmarkSet`.

    Returns:
        The cleaned frame; categoricals stay categorical.
    """
    frame = frame.drop(columns=list(spec.drop)).reset_index(drop=True)
    frame = frame.apply(lambda column: column if column.name == spec.target else _numeric_levels(column))
    return frame.rename(columns=lambda name: re.sub(r"\W+", "_", str(name)).strip("_"))


def target_name(spec: BenchmarkSet) -> str:
    """The target column's name in the CSV (plain-identifier form)."""
    return re.sub(r"\W+", "_", spec.target).strip("_")


def load(name: str, refresh: bool = False) -> tuple[pd.DataFrame, str, Path]:
    """Loads one benchmark set, fetching and exporting it on first use.

    Args:
        name: A `DATASETS` name.
        refresh: Fetch and export again.

    Returns:
        `(frame, target column, CSV path)`.

    Raises:
        KeyError: If the name is unknown.
    """
    spec = {item.name: item for item in DATASETS}[name]
    path = CACHE / "csv" / f"{name}.csv"
    if refresh or not path.exists():
        frame = clean(read_r_object(spec.package, spec.r_name, refresh), spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    return pd.read_csv(path), target_name(spec), path


def describe(frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """Rows, numeric and categorical feature counts and the task of a set.

    Args:
        frame: The exported table.
        target: Its label column.

    Returns:
        `{"rows", "numeric", "categorical", "missing", "task"}`.
    """
    features = frame.drop(columns=[target])
    numeric = features.select_dtypes("number").shape[1]
    labels = frame[target]
    if pd.api.types.is_numeric_dtype(labels) and labels.nunique() > 20:
        task = "regression"
    else:
        task = "binary" if labels.nunique() == 2 else f"{labels.nunique()} classes"
    return {"rows": len(frame), "numeric": numeric, "categorical": features.shape[1] - numeric,
            "missing": f"{features.isna().mean().mean():.1%}", "task": task}


def main(argv: list[str] | None = None) -> None:
    """Fetches and exports the requested sets (all by default) and prints their table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="sets to fetch (default: all)")
    parser.add_argument("--refresh", action="store_true", help="download and export again")
    args = parser.parse_args(argv)
    names = args.names or [item.name for item in DATASETS]
    print(f"{'set':<16}{'rows':>7}{'num':>5}{'cat':>5}{'missing':>9}  {'task':<12}{'target':<22}file")
    for name in names:
        frame, target, path = load(name, args.refresh)
        info = describe(frame, target)
        print(f"{name:<16}{info['rows']:>7}{info['numeric']:>5}{info['categorical']:>5}{info['missing']:>9}  "
              f"{info['task']:<12}{target:<22}{path}")


if __name__ == "__main__":
    main()
