"""Target-aware piecewise-linear bins (`preprocessing.numeric_bin_edges: target`).

Gorishniy et al., "On Embeddings for Numerical Features in Tabular Deep
Learning" (NeurIPS 2022), section 3.2: the bins of a column are the leaves of
a decision tree fitted on that column alone to predict the label, so the edges
are the tree's split thresholds plus the column's training minimum and
maximum. Checked against scikit-learn's own tree, on step functions whose
thresholds are known, on both tasks, and through the config, the fold refits
and a k-fold run that registers and serves (`tests/test_tabular_encodings.py`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.tree import DecisionTreeClassifier

from kerasflow.data.load import load_frame
from kerasflow.features.encodings import TREE_LEAF_CAP, fit_quantile_bins, fit_target_bins


def _steps(rows: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Column 0 decides the class at 3.7 and 8.2; column 1 is constant within each class's rows."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(0, 10, rows), np.full(rows, 2.5)])
    return x, (x[:, 0] > 3.7).astype(int) + (x[:, 0] > 8.2).astype(int)


def test_the_edges_are_the_thresholds_of_a_tree_on_the_column_alone_with_its_range() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3))
    y = np.where(x[:, 0] + 0.3 * rng.normal(size=500) > 0, "yes", "no")
    for j, edges in enumerate(fit_target_bins(x, y, n_bins=8)):
        tree = DecisionTreeClassifier(max_leaf_nodes=8, min_samples_leaf=min(TREE_LEAF_CAP, 500 // 8),
                                      min_impurity_decrease=1e-4, random_state=0).fit(x[:, [j]], y).tree_
        splits = tree.threshold[tree.children_left != -1]
        assert edges == sorted({x[:, j].min(), *splits.tolist(), x[:, j].max()})
        assert len(edges) <= 9 and np.all(np.diff(edges) > 0)


def test_the_bins_follow_the_label_not_the_row_density() -> None:
    x, y = _steps()
    step, constant = fit_target_bins(x, y, n_bins=48)
    assert step == pytest.approx([x[:, 0].min(), 3.7, 8.2, x[:, 0].max()], abs=0.02)  # one bin per class
    assert constant == [2.5, 3.5]  # a constant column: the single bin [c, c + 1]
    assert len(fit_quantile_bins(x, 48)[0]) == 49  # quantile bins spread over the rows instead


def test_a_large_table_fits_its_trees_on_a_fixed_sample_with_the_whole_range() -> None:
    x, y = _steps(rows=20_000, seed=4)
    x[7, 0], x[11, 0] = -3.0, 14.0  # extremes a 600-row sample would most likely miss
    edges = fit_target_bins(x, y, n_bins=48, max_rows=600)[0]
    assert edges[0] == -3.0 and edges[-1] == 14.0
    assert all(min(abs(np.asarray(edges) - step)) < 0.1 for step in (3.7, 8.2))
    assert fit_target_bins(x, y, n_bins=48, max_rows=600) == fit_target_bins(x, y, n_bins=48, max_rows=600)


def test_regression_bins_do_not_depend_on_the_label_units() -> None:
    x, steps = _steps(seed=2)
    y = steps * 3.0 + np.random.default_rng(3).normal(0.0, 0.05, len(steps))
    edges = fit_target_bins(x[:, :1], y, n_bins=16, task="regression")[0]
    assert all(min(abs(np.asarray(edges) - step)) < 0.02 for step in (3.7, 8.2))
    assert fit_target_bins(x[:, :1], y * 1e6, n_bins=16, task="regression") == [edges]
    assert fit_target_bins(x[:, :1], y * 1e-6, n_bins=16, task="regression") == [edges]


def test_missing_values_are_left_out_and_bad_shapes_are_refused() -> None:
    x, y = _steps(rows=400)
    x[:50, 0] = np.nan
    edges = fit_target_bins(x, y, n_bins=4)[0]
    assert np.isfinite(edges).all() and edges[0] == np.nanmin(x[:, 0]) and edges[-1] == np.nanmax(x[:, 0])
    assert fit_target_bins(np.full((10, 1), np.nan), np.zeros(10), n_bins=4) == [[0.0, 1.0]]
    with pytest.raises(ValueError, match="one label per row"):
        fit_target_bins(x, y[:-1])


def _config(tmp_path: Path, **sections):
    from kerasflow.schemas.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "data": {"source": "penguins", "target": "species"},
                                    "preprocessing": {"numeric_embedding": "piecewise_linear",
                                                      "numeric_bin_edges": "target"}, **sections}))
    return load_config(path)


def test_the_config_fits_the_bins_of_the_normalized_values_on_the_training_label(tmp_path: Path) -> None:
    from kerasflow.features.labels import fit_labels
    from kerasflow.features.options import preprocessing_options
    from kerasflow.features.tabular import fit_features, select_columns
    from kerasflow.schemas.config import ConfigError

    frame = load_frame("penguins").dropna(subset=["species"]).reset_index(drop=True)
    train = frame.iloc[:240]
    numeric, categorical = select_columns(frame, "species")
    config = _config(tmp_path)
    assert "label" not in preprocessing_options(config)  # without training rows: the keywords of quantile bins
    options = preprocessing_options(config, train, fit_labels(train["species"]))
    assert options["task"] == "classification" and options["label"].equals(train["species"])
    spec = fit_features(train, numeric, categorical, **options)
    filled = train[numeric].fillna(pd.Series(spec.fill, index=numeric)).to_numpy("float64")
    raw = fit_target_bins(filled, train["species"].to_numpy(), 48)
    scale = np.sqrt(spec.variance)
    for j, edges in enumerate(spec.bins):  # z-scored edges of the raw columns' target-aware bins
        np.testing.assert_allclose(edges, (np.asarray(raw[j]) - spec.mean[j]) / scale[j], rtol=1e-9, atol=1e-12)
        assert len(edges) < 20  # a few bins where the species change, not 48 quantiles
    with pytest.raises(ConfigError, match=r"preprocessing\.numeric_bin_edges"):
        _config(tmp_path, preprocessing={"numeric_bin_edges": "trees"})


def test_target_bins_need_one_label_column(tmp_path: Path) -> None:
    from kerasflow.features.labels import HeadSpec, OutputsSpec, fit_labels
    from kerasflow.features.options import preprocessing_options
    from kerasflow.features.tabular import FeatureError

    frame = load_frame("penguins").dropna(subset=["species"])
    heads = OutputsSpec([HeadSpec("species", fit_labels(frame["species"]))])
    with pytest.raises(FeatureError, match=r"preprocessing\.numeric_bin_edges: target .* several output heads"):
        preprocessing_options(_config(tmp_path), frame, heads)
