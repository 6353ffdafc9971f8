"""The sets of the quality benchmark (`benchmarks/quality.py`) and their seeded train/test splits.

Three kinds of set:

- **tables**: the 13 real sets of `benchmarks/datasets.py` (Debian's
  `r-cran-modeldata` / `r-cran-mlbench`, fetched on first use; mlbench's
  original Wisconsin `BreastCancer` is called `breast_cancer_wbc` here) and
  scikit-learn's bundled sets as kerasflow reads them (`breast_cancer`,
  `wine`, `iris`, `digits`, `diabetes`, `penguins`);
- **text**: the Amazon fine-food reviews of `configs/fine_foods_bow.yaml`
  (its train and test files pooled, then split again per seed);
- **image**: the digit folder of `configs/digits_folder.yaml`.

Every seed is its own stratified (for classes) 80/20 train/test split of
the set's rows (rows without a label are left out first). `materialize`
writes it as files, `train.csv` and `test.csv` (or `train/` and `test/`
class folders of copied images), so that kerasflow reads the test file as
`data.test_source` and scores exactly the rows the baselines score.
Plain pandas and scikit-learn: no kerasflow pipeline, no TensorFlow.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets as r_sets  # noqa: E402  (benchmarks/datasets.py, the Debian R data sets)

TEST_FRACTION = 0.2
SMALL_ROWS = 4000  # sets below this many rows get 3 seeds by default, larger ones 1
TINY_ROWS = 500  # ... and below this many, 10: one test row of glass's 43 is 2.3 points (docs/tabular-defaults.md)
SKLEARN_SETS = ("breast_cancer", "wine", "iris", "digits", "diabetes", "penguins")
R_ALIASES = {"breast_cancer_wbc": "breast_cancer"}  # benchmark name -> benchmarks/datasets.py name
TEXT_CONFIG, IMAGE_CONFIG = "configs/fine_foods_bow.yaml", "configs/digits_folder.yaml"
FILE = "file"  # the image listing's column of absolute file paths


@dataclass(frozen=True)
class QualitySet:
    """One benchmark set.

    Attributes:
        name: The benchmark's name for it.
        kind: `table`, `text` or `image`.
        source: Where its rows come from: a `benchmarks/datasets.py` name
            (`origin` `debian`), a kerasflow built-in source (`sklearn`) or a
            bundled config (`config`).
        text: The free-text column (text sets).
        bundled: A bundled config whose model the `bundled` method runs on the same split.
    """

    name: str
    kind: str
    source: str
    origin: str = "config"
    text: str | None = None
    bundled: str | None = None


@dataclass
class SeedSplit:
    """One seed's split of a set, written to files.

    Attributes:
        train, test: The rows as kerasflow reads them (tables read back from the CSV files).
        target: The label column.
        task: `classification` or `regression`.
        data: The `data` section that points kerasflow at the files.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    target: str
    task: str
    data: dict[str, Any] = field(default_factory=dict)


def all_sets() -> dict[str, QualitySet]:
    """Every set of the benchmark, by name: the tables (R, then scikit-learn), the text set and the image folder."""
    r_names = {r_name: name for name, r_name in R_ALIASES.items()}
    tables = [QualitySet(r_names.get(spec.name, spec.name), "table", spec.name, "debian") for spec in r_sets.DATASETS]
    tables += [QualitySet(name, "table", name, "sklearn") for name in SKLEARN_SETS]
    text = QualitySet("fine_foods", "text", TEXT_CONFIG, text="review", bundled=TEXT_CONFIG)
    image = QualitySet("digits_folder", "image", IMAGE_CONFIG, bundled=IMAGE_CONFIG)
    return {item.name: item for item in [*tables, text, image]}


QUICK_SETS = ("iris", "wine", "sonar", "pima_diabetes", "diabetes")


def load_rows(item: QualitySet) -> tuple[pd.DataFrame, str]:
    """All labelled rows of a set and its label column (fetching Debian's R data packages on first use).

    Args:
        item: The set.

    Returns:
        `(rows, target)`; an image set's rows are `file` (absolute path) and the label.
    """
    if item.kind == "image":
        return _image_listing(item.source)
    if item.kind == "text":
        data = yaml.safe_load((ROOT / item.source).read_text())["data"]
        frame = pd.concat([pd.read_csv(ROOT / data["source"]), pd.read_csv(ROOT / data["test_source"])])
        target = data["target"]
    elif item.origin == "sklearn":
        from kerasflow.data.load import load_frame

        frame = load_frame(item.source)
        target = "species" if item.source == "penguins" else "target"
    else:
        frame, target, _ = r_sets.load(item.source)
    return frame.dropna(subset=[target]).reset_index(drop=True), target


def _image_listing(config: str) -> tuple[pd.DataFrame, str]:
    """The files of a bundled image-folder config's `data.source` with their class folder names."""
    data = yaml.safe_load((ROOT / config).read_text())["data"]
    root = ROOT / data["source"]
    files = sorted(path for path in root.glob("*/*") if path.is_file() and not path.name.startswith("."))
    return pd.DataFrame({FILE: [str(path) for path in files], data["target"]: [path.parent.name for path in files]}), \
        data["target"]


def task_of(labels: pd.Series) -> str:
    """`regression` for numbers with more than 20 distinct values, else `classification`."""
    numeric = pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels)
    return "regression" if numeric and labels.nunique() > 20 else "classification"


def seeds_for(rows: int, asked: int | None) -> list[int]:
    """The seeds a set runs: `asked` if given, else 10 below `TINY_ROWS` rows, 3 below `SMALL_ROWS` and 1 above.

    Ten on the smallest sets: on glass (43 test rows) the per-split differences between the defaults
    and HistGradientBoosting have a standard error of about a row (2.3 points), so three splits said
    -3.8 points where ten say -0.7 (docs/tabular-defaults.md, session 22).
    """
    if asked is not None:
        return list(range(asked))
    return list(range(10 if rows < TINY_ROWS else 3 if rows < SMALL_ROWS else 1))


def materialize(item: QualitySet, frame: pd.DataFrame, target: str, seed: int, folder: Path) -> SeedSplit:
    """Splits a set's rows for one seed and writes the split where kerasflow reads it.

    Args:
        item: The set.
        frame: Its rows (`load_rows`).
        target: Its label column.
        seed: The split's seed.
        folder: Where to write `train.csv`/`test.csv` (or `train/`/`test/` folders).

    Returns:
        The `SeedSplit`.
    """
    from sklearn.model_selection import train_test_split

    task = task_of(frame[target])
    stratify = frame[target] if task == "classification" and frame[target].value_counts().min() >= 2 else None
    train, test = train_test_split(frame, test_size=TEST_FRACTION, random_state=seed, stratify=stratify)
    folder.mkdir(parents=True, exist_ok=True)
    if item.kind == "image":
        return _write_images(item, train, test, target, task, folder)
    for name, rows in (("train", train), ("test", test)):
        rows.to_csv(folder / f"{name}.csv", index=False)
    data = {"source": str(folder / "train.csv"), "test_source": str(folder / "test.csv"), "target": target}
    return SeedSplit(pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv"), target, task, data)


def _write_images(item: QualitySet, train: pd.DataFrame, test: pd.DataFrame, target: str, task: str,
                  folder: Path) -> SeedSplit:
    """Copies the split's image files into `train/<class>/` and `test/<class>/`; the data section is the bundled one's."""
    parts = {}
    for name, rows in (("train", train), ("test", test)):
        root = folder / name
        if root.exists():
            shutil.rmtree(root)
        for path, label in zip(rows[FILE], rows[target]):
            (root / str(label)).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, root / str(label) / Path(path).name)
        parts[name] = rows.assign(**{FILE: [str(root / str(label) / Path(path).name)
                                            for path, label in zip(rows[FILE], rows[target])]})
    data = yaml.safe_load((ROOT / item.source).read_text())["data"]
    data.update(source=str(folder / "train"), test_source=str(folder / "test"))
    return SeedSplit(parts["train"].reset_index(drop=True), parts["test"].reset_index(drop=True), target, task, data)
