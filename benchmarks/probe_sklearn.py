"""The scikit-learn side of `tabular_probe.py`: reference models, and tree leaves as network inputs.

Reference models, each fitted on the probe's training and validation rows
and scored on its test rows (default settings unless named):

- `hgb`: `HistGradientBoostingClassifier()` / `Regressor()` on the raw columns (categoricals as pandas categories);
- `rf`, `et`: a random forest and extremely randomized trees (100 trees);
- `knn`: one nearest neighbour, `svc`: an RBF support vector machine (C 10), `lr`: logistic regression
  (C 10) / ridge, each on standardized numbers and one-hot categoricals.

Plain scikit-learn and pandas; no Keras.
"""

from __future__ import annotations

import pandas as pd

SKLEARN = ("hgb", "rf", "et", "knn", "svc", "lr")


def filled(part: pd.DataFrame, categorical) -> pd.DataFrame:
    """The rows with missing categorical values as the level `(missing)`, every level a string."""
    part = part.copy()
    for name in categorical:
        part[name] = part[name].astype(object).where(part[name].notna(), "(missing)").astype(str)
    return part


def run_sklearn(kind: str, train: pd.DataFrame, test: pd.DataFrame, target: str, classify: bool, seed: int):
    """Fits a reference model on `train` and returns its predictions of `test` (labels as text for classes)."""
    if kind == "hgb":
        return _hgb(train, test, target, classify, seed)
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC, SVR

    features = train.drop(columns=[target])
    numeric = list(features.select_dtypes("number").columns)
    categorical = [name for name in features.columns if name not in numeric]
    models = {"rf": (RandomForestClassifier, RandomForestRegressor), "et": (ExtraTreesClassifier, ExtraTreesRegressor),
              "knn": (lambda: KNeighborsClassifier(1), lambda: KNeighborsRegressor(1)),
              "svc": (lambda: SVC(C=10), lambda: SVR(C=10)),
              "lr": (lambda: LogisticRegression(C=10, max_iter=3000), Ridge)}
    model = models[kind][0 if classify else 1]()
    if kind in ("rf", "et"):
        model.set_params(random_state=seed)
    columns = make_column_transformer((make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                                      (OneHotEncoder(handle_unknown="ignore"), categorical))
    fitted = make_pipeline(columns, model).fit(filled(features, categorical),
                                               train[target].astype(str) if classify else train[target])
    return fitted.predict(filled(test.drop(columns=[target]), categorical))


def _hgb(train, test, target, classify, seed):
    """Default HistGradientBoosting on the raw columns (categoricals as pandas categories)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    def frame(part):
        x = filled(part.drop(columns=[target]), list(part.drop(columns=[target]).select_dtypes(exclude="number")))
        for name in x.select_dtypes(exclude="number").columns:
            levels = sorted(filled(train[[name]], [name])[name].unique())
            x[name] = pd.Categorical(x[name], categories=levels)
        return x

    model = (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(
        random_state=seed, categorical_features="from_dtype")
    model.fit(frame(train), train[target].astype(str) if classify else train[target])
    return model.predict(frame(test))


def tree_leaves(variant, nums, train_labels, classify: bool, seed: int):
    """Tree leaves, one-hot, of the numeric matrices of every part (the `rt` and `rf` options), or None.

    `rt<n>`: n totally random trees of depth 5 (`RandomTreesEmbedding`, fitted on the training numbers
    alone); `rf<n>`: a random forest of n trees (leaves of at least 3 rows) fitted on the training labels.
    """
    if "rt" not in variant.values and "rf" not in variant.values:
        return None
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor, RandomTreesEmbedding
    from sklearn.preprocessing import OneHotEncoder

    if "rt" in variant.values:
        trees = RandomTreesEmbedding(variant.get("rt", 100), max_depth=5, random_state=seed).fit(nums[0])
        return [trees.transform(num).toarray().astype("float32") for num in nums]
    forest = (RandomForestClassifier if classify else RandomForestRegressor)(
        variant.get("rf", 100), min_samples_leaf=3, random_state=seed).fit(nums[0], train_labels)
    onehot = OneHotEncoder(handle_unknown="ignore").fit(forest.apply(nums[0]))
    return [onehot.transform(forest.apply(num)).toarray().astype("float32") for num in nums]
