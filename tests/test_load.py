"""Tests for kerasflow.data.load: built-in sets, files, globs, errors, fingerprints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasflow.data.load import (
    BUILTIN_SOURCES,
    DataLoadError,
    fingerprint_frame,
    load_frame,
    read_table,
    resolve_source,
)

REPO = Path(__file__).resolve().parents[1]
IDENTIFIER = re.compile(r"[A-Za-z0-9_]+")
LABELS = {name: "target" for name in BUILTIN_SOURCES} | {"penguins": "species"}


@pytest.fixture
def tiny() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.5, 2.5, np.nan], "color": ["red", "blue", None], "y": [0, 1, 0]})


def _write_csv(path: Path, frame: pd.DataFrame, mtime: float | None = None) -> Path:
    frame.to_csv(path, index=False)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# --- built-in sources -------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_SOURCES)
def test_builtin_has_label_and_identifier_columns(name: str) -> None:
    frame = load_frame(name)
    assert LABELS[name] in frame.columns
    assert len(frame) > 100
    assert not frame.columns.has_duplicates
    assert all(IDENTIFIER.fullmatch(c) for c in frame.columns), list(frame.columns)
    assert resolve_source(name) == name


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer"])
def test_named_classes_become_strings(name: str) -> None:
    labels = load_frame(name)["target"]
    assert pd.api.types.is_string_dtype(labels)
    assert labels.notna().all()
    assert labels.nunique() in (2, 3)


def test_iris_class_names_and_sanitized_features() -> None:
    frame = load_frame("iris")
    assert set(frame["target"]) == {"setosa", "versicolor", "virginica"}
    assert list(frame.columns[:4]) == [
        "sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm",
    ]  # fmt: skip


def test_wine_and_breast_cancer_names_sanitized() -> None:
    assert "od280_od315_of_diluted_wines" in load_frame("wine").columns
    assert "mean_radius" in load_frame("breast_cancer").columns


def test_digits_keeps_integer_labels() -> None:
    frame = load_frame("digits")
    assert pd.api.types.is_integer_dtype(frame["target"])
    assert sorted(frame["target"].unique()) == list(range(10))
    assert frame.shape == (1797, 65)
    assert "pixel_0_0" in frame.columns


def test_diabetes_keeps_float_target() -> None:
    frame = load_frame("diabetes")
    assert pd.api.types.is_float_dtype(frame["target"])
    assert frame["target"].nunique() > 100


def test_penguins_keeps_nans_strings_and_year() -> None:
    frame = load_frame("penguins")
    assert frame.shape == (344, 8)
    assert "year" in frame.columns
    assert frame["sex"].isna().any() and frame["bill_length_mm"].isna().any()
    assert pd.api.types.is_string_dtype(frame["island"])
    assert set(frame["species"]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_builtin_wins_over_file_of_same_name(tmp_path: Path) -> None:
    (tmp_path / "iris").write_text("a\n1\n")
    assert resolve_source("iris", base_dir=tmp_path) == "iris"


# --- files and globs --------------------------------------------------------


def test_csv_round_trip_relative_to_base_dir(tmp_path: Path, tiny: pd.DataFrame) -> None:
    _write_csv(tmp_path / "data.csv", tiny)
    frame = load_frame("data.csv", base_dir=tmp_path)
    pd.testing.assert_frame_equal(frame, pd.read_csv(tmp_path / "data.csv"))
    assert frame["x"].isna().sum() == 1
    assert resolve_source("data.csv", base_dir=tmp_path) == str(tmp_path / "data.csv")


def test_absolute_path_ignores_base_dir(tmp_path: Path, tiny: pd.DataFrame) -> None:
    path = _write_csv(tmp_path / "data.csv", tiny)
    assert len(load_frame(str(path), base_dir=tmp_path / "elsewhere")) == 3
    assert len(load_frame(path)) == 3


def test_parquet_round_trip(tmp_path: Path, tiny: pd.DataFrame) -> None:
    tiny.to_parquet(tmp_path / "data.parquet", index=False)
    frame = load_frame(str(tmp_path / "data.parquet"))
    pd.testing.assert_frame_equal(frame, tiny, check_dtype=False)


def test_glob_picks_newest_file(tmp_path: Path, tiny: pd.DataFrame) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    _write_csv(drop / "b_old.csv", tiny.head(1), mtime=1_000_000)
    _write_csv(drop / "a_new.csv", tiny.head(2), mtime=3_000_000)
    tiny.to_parquet(drop / "c_mid.parquet")
    os.utime(drop / "c_mid.parquet", (2_000_000, 2_000_000))
    (drop / "notes.txt").write_text("newest but not data")
    assert resolve_source("drop/*", base_dir=tmp_path) == str(drop / "a_new.csv")
    assert len(load_frame("drop/*.csv", base_dir=tmp_path)) == 2
    assert len(load_frame(str(drop / "[bc]_*"))) == 3


# --- errors ----------------------------------------------------------------


def _assert_load_error(source: str | Path, *fragments: str, base_dir: Path | None = None) -> None:
    with pytest.raises(DataLoadError) as info:
        load_frame(source, base_dir=base_dir)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file(tmp_path: Path) -> None:
    _assert_load_error("nope.csv", "does not exist", str(tmp_path / "nope.csv"), base_dir=tmp_path)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "folder.csv").mkdir()
    _assert_load_error(tmp_path / "folder.csv", "not a regular file", "folder.csv")


def test_glob_matching_nothing(tmp_path: Path) -> None:
    _assert_load_error(str(tmp_path / "*.csv"), "No files match", str(tmp_path / "*.csv"))


def test_glob_matching_only_unsupported_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x\n1\n")
    _assert_load_error(str(tmp_path / "*"), "none has a supported extension", str(tmp_path))


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("x\n1\n")
    _assert_load_error(path, "Unsupported file type '.xlsx'", str(path))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    _assert_load_error(path, "is empty", str(path))


def test_blank_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("\n\n")
    _assert_load_error(path, "is empty", str(path))


def test_header_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("a,b\n")
    _assert_load_error(path, "no data rows", str(path))


def test_unparsable_csv(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n")
    _assert_load_error(path, "Cannot parse", str(path))


def test_undecodable_csv(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"name\nok\nCaf\xe9 cr\xe8me\n")
    _assert_load_error(path, "not valid utf-8", "line 3", "Caf\\xe9", "data.encoding: cp1252", str(path))
    assert load_frame(path, encoding="latin-1")["name"].tolist() == ["ok", "Café crème"]


def test_semicolon_file_is_sniffed_and_read(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b;label\n1,5;2;x\n3,5;4;y\n")
    table = read_table(path)
    assert table.sniffed and table.delimiter == ";"
    assert list(table.frame.columns) == ["a", "b", "label"]
    assert not read_table(path, delimiter=";").sniffed


def test_truncated_last_line_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_text("a,b,c,label\n1,2,3,x\n4,5,6,y\n7,8")
    assert read_table(path).truncated == (4, 2)
    path.write_text("a,b,c,label\n1,2,3,x\n4,5,6,y\n")
    assert read_table(path).truncated is None


def test_unparsable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "garbage.parquet"
    path.write_bytes(b"definitely not parquet")
    _assert_load_error(path, "Cannot parse", str(path))


def test_duplicate_csv_columns(tmp_path: Path) -> None:
    path = tmp_path / "dupes.csv"
    path.write_text("a,b,a\n1,2,3\n")
    _assert_load_error(path, "duplicate column names: ['a']", str(path))


def test_duplicate_parquet_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dupes.parquet"
    pq.write_table(pa.table([[1], [2]], names=["a", "a"]), path)
    _assert_load_error(path, "duplicate column names: ['a']", str(path))


# --- fingerprints ------------------------------------------------------------


def test_fingerprint_is_stable_and_content_sensitive(tiny: pd.DataFrame) -> None:
    digest = fingerprint_frame(tiny)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert fingerprint_frame(tiny.copy()) == digest
    changed = tiny.copy()
    changed.loc[0, "x"] = 9.0
    assert fingerprint_frame(changed) != digest
    assert fingerprint_frame(tiny.rename(columns={"x": "z"})) != digest
    assert fingerprint_frame(tiny.astype({"y": "float64"})) != digest
    assert fingerprint_frame(tiny.iloc[::-1]) != digest


def test_fingerprint_is_stable_across_processes(tiny: pd.DataFrame) -> None:
    code = (
        "import numpy as np, pandas as pd; from kerasflow.data.load import fingerprint_frame; "
        "print(fingerprint_frame(pd.DataFrame({'x': [1.5, 2.5, np.nan], "
        "'color': ['red', 'blue', None], 'y': [0, 1, 0]})))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == fingerprint_frame(tiny), out.stderr


def test_module_imports_no_heavy_frameworks() -> None:
    code = (
        "import sys, kerasflow.data.load; "
        "print(sorted(m for m in ('prefect', 'mlflow', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
