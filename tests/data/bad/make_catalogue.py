"""Writes the catalogue of broken data files the data-contract tests run through the CLI.

Every file is derived from a bundled dataset (scikit-learn's breast cancer
and iris sets, palmerpenguins), so the catalogue is reproducible offline:

    python tests/data/bad/make_catalogue.py [OUT_DIR]

`CASES` (below) says, for each file, the config overrides a test applies,
the exit code the CLI must give and the words its message must contain.
The repairs chosen by config (`preprocessing.non_finite: missing`,
`invalid_numbers: fail`, `data.encoding`) are tested on the same files
without the CLI, in `tests/test_contract.py`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
COLUMNS = ["mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness", "target"]


@dataclass(frozen=True)
class Case:
    """One broken file and what the CLI must answer.

    Args:
        name: Case id.
        file: The training file (in the catalogue folder).
        exit_code: 2 (refused) or 0 (repaired, with a warning).
        words: Words the output must contain (case-insensitive).
        overrides: `--set` overrides beyond the base config.
        test_file: A `data.test_source` file. Default none.
        target: The label column. Default `target`.
        absent: Words the output must not contain. Default none.
        data: More keys of the config's `data` section. Default none.
    """

    name: str
    file: str
    exit_code: int
    words: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    test_file: str | None = None
    target: str = "target"
    absent: tuple[str, ...] = ()
    data: dict = field(default_factory=dict)


CASES = [
    Case("single_class", "single_class.csv", 2, ("target", "at least 2 classes", "single_class.csv")),
    Case("polluted_numeric", "polluted_numeric.csv", 0, ("mean_texture", "not numbers", "'?'", "'abc'", "missing")),
    Case("infinite_values", "infinite.csv", 2, ("mean_area", "infinite", "rows", "preprocessing.non_finite")),
    Case("float32_overflow", "overflow.csv", 2, ("mean_perimeter", "float32", "1e+300")),
    Case("missing_target", "clean.csv", 2, ("diagnosis", "available columns", "target"), target="diagnosis"),
    Case("misspelt_target", "clean.csv", 2, ("targt", "close matches: target"), target="targt"),
    Case("semicolon_delimiter", "semicolon.csv", 0, ("delimiter ';'", "data.delimiter")),
    Case("latin1_encoding", "latin1.csv", 2, ("not valid utf-8", "line", "data.encoding")),
    Case("truncated_last_row", "truncated.csv", 2, ("truncated", "last line", "fields")),
    Case("duplicate_header", "duplicate_header.csv", 2, ("duplicate column names", "mean_area")),
    Case("constant_column", "constant_column.csv", 0, ("source_system", "single value", "dropped")),
    Case("mostly_missing", "mostly_missing.csv", 0, ("mean_smoothness", "missing", "imputed")),
    Case("rare_class", "rare_class.csv", 2, ("virginica", "fewer than", "split.stratify")),
    Case("missing_label", "missing_label.csv", 2, ("no label", "rows")),
    Case("unseen_test_label", "iris_two_classes.csv", 2, ("never seen in training", "virginica", "iris_test.csv"),
         test_file="iris_test.csv"),
    Case("bad_set_value", "clean.csv", 2, ("training.epochs", "not a plain yaml value"),
         ("training.epochs=!!python/object/apply:os.system [echo]",)),
    Case("decimal_comma", "decimal_comma.csv", 2, ("mean_radius", "written with a comma", "'17,99'", "data.decimal: ','")),
    Case("utf16_encoding", "utf16.csv", 2, ("not valid utf-8", "decodes as utf-16", "data.encoding: utf-16"),
         absent=("\x00",)),
    Case("regression_infinite_label", "regression_label.csv", 2, ("mean_area", "not finite", "rows"),
         target="mean_area"),
    Case("image_empty_class", "images", 2, ("empty class folder", "3/", "2/broken.png", "1/notes.txt"),
         target="label", data={"image": {"size": [8, 8], "channels": 1}}),
]


def write_catalogue(out: Path = HERE) -> list[Path]:
    """Writes every broken file into `out`.

    Args:
        out: Folder to write to. Default: this folder.

    Returns:
        The files written.
    """
    from kerasflow.data.load import load_frame

    out.mkdir(parents=True, exist_ok=True)
    cancer = load_frame("breast_cancer")[COLUMNS].iloc[:240].reset_index(drop=True)
    iris = load_frame("iris")
    files = {"clean.csv": cancer}
    single = cancer[cancer["target"] == "benign"].reset_index(drop=True)
    files["single_class.csv"] = single
    polluted = cancer.astype({"mean_texture": object})
    polluted.loc[[3, 17, 58], "mean_texture"] = ["?", "abc", "?"]
    files["polluted_numeric.csv"] = polluted
    infinite = cancer.copy()
    infinite.loc[[5, 40], "mean_area"] = [np.inf, -np.inf]
    files["infinite.csv"] = infinite
    overflow = cancer.copy()
    overflow.loc[9, "mean_perimeter"] = 1e300
    files["overflow.csv"] = overflow
    constant = cancer.copy()
    constant.insert(0, "source_system", "crm")
    files["constant_column.csv"] = constant
    sparse = cancer.copy()
    sparse.loc[sparse.index % 10 < 7, "mean_smoothness"] = np.nan
    files["mostly_missing.csv"] = sparse
    missing = cancer.copy()
    missing.loc[[11, 12], "target"] = None
    files["missing_label.csv"] = missing
    rare = pd.concat([iris[iris["target"] != "virginica"], iris[iris["target"] == "virginica"].head(2)])
    files["rare_class.csv"] = rare.reset_index(drop=True)
    files["iris_two_classes.csv"] = iris[iris["target"] != "virginica"].reset_index(drop=True)
    files["iris_test.csv"] = iris.iloc[::5].reset_index(drop=True)
    regression = cancer.drop(columns="target")
    regression.loc[[4, 30], "mean_area"] = [np.inf, np.nan]
    files["regression_label.csv"] = regression
    files["test_constant.csv"] = load_frame("breast_cancer")[COLUMNS].iloc[240:280].assign(mean_smoothness=0.1)
    written = [_write_csv(frame, out / name) for name, frame in files.items()]
    written += [_semicolon(cancer, out), _latin1(cancer, out), _truncated(cancer, out), _duplicate(cancer, out),
                _decimal_comma(cancer, out), _utf16(cancer, out)]
    return written + _image_folder(load_frame("digits"), out / "images")


def _decimal_comma(frame: pd.DataFrame, out: Path) -> Path:
    path = out / "decimal_comma.csv"
    frame.to_csv(path, index=False, sep=";", decimal=",")
    return path


def _utf16(frame: pd.DataFrame, out: Path) -> Path:
    path = out / "utf16.csv"
    frame.to_csv(path, index=False, encoding="utf-16")
    return path


def _image_folder(digits: pd.DataFrame, root: Path) -> list[Path]:
    """Digits as PNGs in class folders, with an empty class folder, a corrupt image and a stray text file."""
    from PIL import Image

    written = []
    for label in (0, 1, 2):
        rows = digits[digits["target"] == label].drop(columns="target").to_numpy()[:6]
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(rows):
            path = root / str(label) / f"img_{i}.png"
            Image.fromarray((pixels.reshape(8, 8) * 15.9).astype("uint8")).save(path, format="PNG", optimize=False)
            written.append(path)
    (root / "3").mkdir(exist_ok=True)
    (root / "3" / ".gitkeep").write_text("")  # an empty class folder that git keeps
    broken, notes = root / "2" / "broken.png", root / "1" / "notes.txt"
    broken.write_bytes(b"\x89PNG not really")
    notes.write_text("scanned by the lab\n")
    return [*written, root / "3" / ".gitkeep", broken, notes]


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _semicolon(frame: pd.DataFrame, out: Path) -> Path:
    path = out / "semicolon.csv"
    frame.to_csv(path, index=False, sep=";")
    return path


def _latin1(frame: pd.DataFrame, out: Path) -> Path:
    path = out / "latin1.csv"
    labelled = frame.assign(clinic=np.where(frame.index % 3 == 0, "Hôpital Nord", "Clinique Sud"))
    labelled.to_csv(path, index=False, encoding="latin-1")
    return path


def _truncated(frame: pd.DataFrame, out: Path) -> Path:
    path = out / "truncated.csv"
    text = frame.to_csv(index=False)
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    path.write_text(text.rstrip("\n")[: -len(last)] + ",".join(last.split(",")[:2]))
    return path


def _duplicate(frame: pd.DataFrame, out: Path) -> Path:
    path = out / "duplicate_header.csv"
    text = frame.to_csv(index=False)
    header, rest = text.split("\n", 1)
    path.write_text(header.replace("mean_smoothness", "mean_area") + "\n" + rest)
    return path


if __name__ == "__main__":
    for written in write_catalogue(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(written)
