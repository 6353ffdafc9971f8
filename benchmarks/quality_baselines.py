"""The scikit-learn baselines of the quality benchmark, fitted on a seed's train rows and scored on its test rows.

- `hgb`: `HistGradientBoostingClassifier()` / `Regressor()` with default
  settings (`random_state=0`); string and boolean columns as pandas
  categoricals, which it splits on natively (`categorical_features="from_dtype"`,
  its default), categories taken from the train rows. Images: the pixels.
  Not run on text.
- `linear`: `LogisticRegression` / `Ridge` on standardized (mean-imputed)
  numeric and one-hot (mode-imputed) categorical columns; for text, TF-IDF
  of `char_wb` 2-5-grams of the text column (sublinear tf, `min_df=2`) +
  `LogisticRegression`; for images, standardized grayscale pixels.

Scores: `accuracy` for classes, `mae` and `rmse` for regression, on the test rows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_sets import FILE  # noqa: E402

MAX_NATIVE_CATEGORIES = 250  # HistGradientBoosting splits natively on at most 255 bins; above, ordinal codes


def scores(task: str, truth: pd.Series, predicted: Any) -> dict[str, float]:
    """The test metrics of one model: accuracy, or MAE and RMSE."""
    from sklearn.metrics import accuracy_score, mean_absolute_error, root_mean_squared_error

    if task == "classification":
        return {"accuracy": float(accuracy_score(truth.astype(str), pd.Series(predicted).astype(str)))}
    return {"mae": float(mean_absolute_error(truth, predicted)), "rmse": float(root_mean_squared_error(truth, predicted))}


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """The string, boolean and category columns (as kerasflow's default `data.categorical`)."""
    return [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]


def run_baseline(method: str, kind: str, split: Any, text: str | None = None) -> dict[str, float] | None:
    """Fits one baseline on the split's train rows and scores its test rows.

    Args:
        method: `hgb` or `linear`.
        kind: The set's kind: `table`, `text` or `image`.
        split: The seed's `SeedSplit`.
        text: The text column (text sets).

    Returns:
        The test metrics, or None where the method does not apply (`hgb` on text).
    """
    classify = split.task == "classification"
    y_train = split.train[split.target]
    if classify:
        y_train = y_train.astype(str)
    if kind == "text":
        if method == "hgb":
            return None
        x_train, x_test, model = _text_linear(split, text)
    elif kind == "image":
        size = _common_size(split.train)
        x_train, x_test = _pixels(split.train, size), _pixels(split.test, size)
        model = _pixel_model(method, classify)
    else:
        features = [c for c in split.train.columns if c != split.target]
        x_train, x_test = split.train[features], split.test[features]
        if method == "hgb":
            x_train, x_test = _as_categories(x_train, x_test)
            model = _hgb(classify)
        else:
            model = _table_linear(x_train, classify)
    model.fit(x_train, y_train)
    return scores(split.task, split.test[split.target], model.predict(x_test))


def _hgb(classify: bool) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    return HistGradientBoostingClassifier(random_state=0) if classify else HistGradientBoostingRegressor(random_state=0)


def _linear(classify: bool) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    return LogisticRegression(max_iter=5000) if classify else Ridge(alpha=1.0)


def _as_categories(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """String and boolean columns as categoricals with the train rows' categories (unseen ones become missing)."""
    train, test = train.copy(), test.copy()
    for column in categorical_columns(train):
        values = train[column].astype("string")
        categories = sorted(values.dropna().unique())
        dtype = pd.CategoricalDtype(categories)
        train[column] = values.astype(object).astype(dtype)
        test[column] = test[column].astype("string").astype(object).astype(dtype)
        if len(categories) > MAX_NATIVE_CATEGORIES:
            train[column] = train[column].cat.codes.replace(-1, np.nan).astype(float)
            test[column] = test[column].cat.codes.replace(-1, np.nan).astype(float)
    return train, test


def _table_linear(train: pd.DataFrame, classify: bool) -> Any:
    """Standardized numeric and one-hot categorical columns, then the linear model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    categorical = categorical_columns(train)
    numeric = [c for c in train.columns if c not in categorical]
    as_text = FunctionTransformer(lambda x: pd.DataFrame(x).astype("string").astype(object).fillna(np.nan))
    transformer = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ("categorical", make_pipeline(as_text, SimpleImputer(strategy="most_frequent"),
                                      OneHotEncoder(handle_unknown="ignore")), categorical),
    ], sparse_threshold=0)
    return make_pipeline(transformer, _linear(classify))


def _text_linear(split: Any, column: str | None) -> tuple[pd.Series, pd.Series, Any]:
    """The text column and TF-IDF of its char_wb 2-5-grams + LogisticRegression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    texts = [frame[column].fillna("").astype(str) for frame in (split.train, split.test)]
    return texts[0], texts[1], make_pipeline(vectorizer, _linear(split.task == "classification"))


def _common_size(frame: pd.DataFrame) -> tuple[int, int]:
    """The most common (width, height) of the listed image files."""
    from PIL import Image

    sizes = pd.Series([Image.open(path).size for path in frame[FILE]])
    return tuple(sizes.mode()[0])


def _pixels(frame: pd.DataFrame, size: tuple[int, int]) -> np.ndarray:
    """The listed image files as flat grayscale pixels in [0, 1], resized to `size`."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(path).convert("L").resize(size), dtype="float32").ravel() / 255.0
                     for path in frame[FILE]])


def _pixel_model(method: str, classify: bool) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return _hgb(classify) if method == "hgb" else make_pipeline(StandardScaler(), _linear(classify))
