"""A quick probe of tabular networks against gradient boosting, to inform kerasflow's defaults.

Standalone (plain Keras and scikit-learn; kerasflow's layers, not its
pipeline), on small real sets from `benchmarks/datasets.py`, the same splits
for every model, several seeds:

- `hgb`: `HistGradientBoostingClassifier()` / `Regressor()` with default settings;
- `mlp`: two Dense(256) + ReLU + dropout 0.1 blocks on standardized numeric
  and one-hot categorical columns, Adam;
- `mlp_q`, `mlp_plr`, `mlp_ple`: the same MLP on quantile-normalized numbers, on their periodic
  embeddings (PLR lite, 16 per feature, sigma 0.1) or on their piecewise-linear embeddings (48 bins, 16 per feature);
- `kf`: kerasflow's data-driven dense default (`kerasflow.models.dense.default_section` and
  `kerasflow.lint.defaults.default_training`: widths, dropout, L2, batch, patience 20);
- `mlp_x5`, `ple_x5`: the mean of five `mlp` / `mlp_ple` networks with different seeds;
- `tabm`: TabM (k=32, width 512, depth 3, dropout 0.1, `tabm_optimizer`: AdamW 2e-3 / 3e-4) on
  quantile-normalized numeric and one-hot categorical columns;
- `tabm_plr`: TabM (depth 2) on periodic embeddings of the quantile-normalized numbers;
- `tabm_ple`: TabM (depth 2) on piecewise-linear embeddings (48 quantile bins) of the quantile-normalized numbers;
- `def`, `def_q`, `def_ple`, `def_ple16`, `def_plr`, `def_plr1`: kerasflow's dense network (two ReLU
  layers of 256, He initialization, dropout 0.1, batch rows/100 in [32, 256], up to 300 epochs,
  patience 20, learning rate halved after 8 flat epochs) on standardized or quantile-normalized
  numbers, on piecewise-linear embeddings of the standardized numbers with bins of their standardized
  training values (48 or 16 bins, as kerasflow's `numeric_embedding: piecewise_linear`), or on their
  periodic embeddings (PLR lite, 16 wide, sigma 0.01 as kerasflow's `periodic`, or 0.1);
  `def_pleraw`: the piecewise-linear embedding of the raw numbers (the former probe's bug);
- any network name ending in `_log` (e.g. `def_log`): the same network on a regression target
  transformed as `preprocessing.target_transform: log` does (log1p of a target >= 0, standardized),
  predictions mapped back by expm1;
  `_logc`: the same, with the network's outputs clipped to the training labels' range before expm1;
- any name with `~` options (e.g. `def_ple~nb8~wd1e-2`): the network with the learning rate,
  weight decay, patience, batch, width, depth, dropout, bins, ensemble size, class weights
  changed (`benchmarks/probe_variants.py` lists them);
- `A|B|...` (quote it in a shell): trains each network and scores the one whose validation loss is
  lowest, as a choice on validation rows would (it prints the losses and the choice).

Scikit-learn references beside `hgb` (`benchmarks/probe_sklearn.py`): `rf`, `et`, `knn`, `svc`, `lr`.

Networks train on 80% of the training rows with early stopping on the other
20% (patience 10, at most 100 epochs) and are scored on the held-out test
rows (20% of the set): accuracy for classes, RMSE for regression.
Informative only: short runs, no tuning.

Measured for the numeric-encoding default (Dec 2026, 3 seeds unless noted; accuracy, RMSE;
`def_pleraw` is the probe's former `def_ple`, see below):

    set          hgb     def            def_ple (fixed)  def_plr        def_pleraw
    glass        0.799   0.721 ± 0.038  0.736 ± 0.067    0.729 ± 0.044  0.744
    ionosphere   0.958   0.906 ± 0.029  0.934 ± 0.024    0.925 ± 0.018  0.930
    sonar        0.810   0.825 ± 0.059  0.849 ± 0.040    -              0.810
    vehicle      -       0.818 ± 0.017  0.769 ± 0.022    -              -
    concrete     4.13*   6.32 ± 0.48    4.74 ± 0.29      5.72 ± 0.34    8.77*
    boston       3.49    2.81 ± 0.43    2.91 ± 0.72      -              6.38*
    satellite*   -       0.9075         0.9122           -              -
    mlc_churn*   -       0.920          0.937            -              -
    credit_data* -       0.798          0.8025           -              -
    ames*        22783   36393          28319            -              -
    (* seed 0 only)

The former probe fed the raw numbers to `PiecewiseLinearEncoding`, whose
linear part ("version B") multiplies `x` by weights of scale 1/sqrt(16):
on concrete (cement, aggregates in the hundreds) and Boston (tax, B) its
outputs were in the hundreds, an unnormalized network, which is why
piecewise-linear looked catastrophic on regression (8.77, 6.38). kerasflow
itself always embedded the normalized numbers with bins of the normalized
training values (`kerasflow.features.encodings.normalized_bins`); the probe
now does the same (`def_ple`; `def_pleraw` keeps the old wiring). The layers
match the paper's formulas (`tests/test_numeric_embeddings.py`). Fixed,
piecewise-linear beats `def` on 8 of 10 sets, most on concrete (-25% RMSE)
and ames (-22%); it loses on vehicle (-4.9 points) and, within the seeds'
spread, on Boston. So the dense default now embeds numbers piecewise-linearly
(`kerasflow.models.dense.default_preprocessing`). PLR (lite, sigma 0.01, on
standardized numbers) helps less. The log target lost on Boston and,
clipped, won narrowly on ames (`def_log`, `def_logc`: 3.05, 3.04 on Boston;
35402, 27070 on ames), so `target_transform: auto` logs only targets skewed
beyond 2 (neither of these).

Through the whole pipeline (`benchmarks/quality.py --methods defaults,hgb`, 5-fold ensemble,
Dec 2026; MAE for concrete, accuracy otherwise; mean ± sd over seeds 0-2 unless noted;
before: the default without embedding, `/work/q1.json` seed 0 and a 3-seed run of main):

    set          defaults before   defaults after (PLE)   HGB
    concrete     4.197 (seed 0)    2.818 ± 0.069          2.996 ± 0.124
    glass        0.744 ± 0.038     0.767 ± 0.050          0.799 ± 0.011
    ionosphere   0.845 (seed 0)    0.944 ± 0.012          0.958 ± 0.012
    vehicle      0.794 (seed 0)    0.792 ± 0.015          0.780 ± 0.012
    boston (MAE) 2.519 (seed 0)    1.935 ± 0.303          2.223 ± 0.367   (seed 0: 2.360 vs 2.667)

Concrete turns from the worst loss (+49% MAE) into a win on every seed;
vehicle, which the probe's single network lost, stays a win with the fold
ensemble, and Boston improves (beats HGB on every seed); glass and ionosphere close most of their gap
(ionosphere from -9.9 to -1.4 points) but still lose.

Measured for issue 23's remaining gaps (7 Dec 2026, a loaded machine; 3 seeds unless noted, the
same test rows as `benchmarks/quality.py`'s; `nbN`: N piecewise-linear bins instead of 48):

    set            hgb            def_ple        nb8            nb16           tabm_ple       tabm
    glass          0.798 ± 0.011  0.736 ± 0.072  0.767 ± 0.050  0.752 ± 0.077  0.721 ± 0.050  0.690 ± 0.072
    ionosphere     0.958 ± 0.011  0.934 ± 0.024  0.934 ± 0.018  0.925 ± 0.018  0.944 ± 0.034  0.962 ± 0.029
    vehicle        -              0.769 ± 0.022  0.818 ± 0.021  0.800 ± 0.029  -              -
    pima_diabetes  -              0.771 ± 0.008  0.773 ± 0.028  0.768 ± 0.021  -              -
    sonar          -              0.849 ± 0.040  0.802 ± 0.040  0.802 ± 0.030  -              -
    concrete*      -              4.69           4.86           4.88           -              -
    mlc_churn*     0.955          0.937          0.945          0.942          0.949 (527 s)  -
    satellite*     -              0.9122         0.9122         0.9130         -              -
    (* seed 0 only; concrete RMSE)

Also on glass: `nb24` 0.744 ± 0.076 (sonar 0.810 ± 0.034), AdamW `wd0.01` 0.736 (and
ionosphere 0.934, mlc_churn 0.941), a lower rate with longer patience (`lr3e-4~p40~rp12`)
0.736, dropout 0.3 0.736, three layers 0.737: none moves glass. On mlc_churn, balanced class
weights cost 1.5 points (0.922) and TabM with piecewise-linear embeddings gained 1.2 (0.949)
at 8 times the time of the dense network (527 s against 67 s under load).

Fewer bins lift the single network on glass (+3.1), vehicle (+4.9) and mlc_churn (+0.8),
tie on ionosphere, pima and satellite, and lose on sonar (-4.7) and concrete (+3.5% RMSE).
Through the whole pipeline (`benchmarks/quality.py --methods defaults,hgb`, 5-fold ensemble,
classification tables with `preprocessing.numeric_bins: 8`, `/work/bench/qgap-nb8-{a,b}.json`,
against main's 48 bins on the same test rows, `/work/bench/q15.json`; 3 seeds):

    set          8 bins         48 bins (main)  HGB
    glass        0.744 ± 0.050  0.767 ± 0.050   0.798 ± 0.011   (one test row worse on every seed)
    ionosphere   0.948 ± 0.024  0.944 ± 0.011   0.958 ± 0.011
    sonar        0.817 ± 0.096  0.825 ± 0.107   0.810 ± 0.070
    vehicle      0.847 ± 0.010  0.792 ± 0.015   0.780 ± 0.012   (better on every seed)

Eight bins win vehicle clearly (+5.5 points) but widen glass's gap (-5.4 against HGB), leave
ionosphere short of HGB and were not run through the pipeline on mlc_churn, pima, breast_cancer_wbc,
attrition, credit_data or satellite, so the defaults keep 48 bins (`numeric_bins` is a setting).

The evidence of 7 Dec 2026 (mlc_churn's categorical embedding above 32 levels; the TabM
paper's training recipe for the dense network below 2,000 rows; what did not close glass) is in
`docs/tabular-defaults.md`.

Usage: python benchmarks/tabular_probe.py [SET ...] [--seeds 3] [--models hgb,mlp,...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import describe, load  # noqa: E402
from probe_sklearn import SKLEARN, filled, run_sklearn, tree_leaves  # noqa: E402
from probe_variants import Variant, class_weights, parse  # noqa: E402

MODELS = ("hgb", "mlp", "mlp_q", "mlp_plr", "mlp_ple", "tabm", "tabm_plr", "tabm_ple")
MLP_INPUTS = {"mlp": "standard", "mlp_q": "quantile", "mlp_plr": "periodic", "mlp_ple": "piecewise_linear",
              "kf": "standard", "mlp_x5": "standard", "ple_x5": "piecewise_linear",
              "def": "standard", "def_q": "quantile", "def_ple": "piecewise_linear", "def_ple16": "piecewise_linear16",
              "def_pleraw": "piecewise_linear_raw", "def_plr": "periodic_std", "def_plr1": "periodic_std0.1"}
DEFAULT_RECIPE = ("def", "def_q", "def_ple", "def_ple16", "def_pleraw", "def_plr", "def_plr1")
ENSEMBLES = {"mlp_x5": 5, "ple_x5": 5}
DEFAULT_SETS = ("vehicle", "pima_diabetes", "attrition")


def split(frame: pd.DataFrame, target: str, seed: int, classify: bool):
    """Train, validation and test rows (64/16/20), stratified for classes."""
    from sklearn.model_selection import train_test_split

    labels = frame[target] if classify else None
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=labels)
    train, valid = train_test_split(train, test_size=0.2, random_state=seed,
                                    stratify=train[target] if classify else None)
    return train, valid, test


def encode(train, parts, target, classify):
    """Numeric matrices (median-imputed), one-hot categoricals and encoded labels, fitted on `train`.

    Returns:
        `(numeric per part, one-hot per part, cardinalities, labels per part, label scale)`.
    """
    features = train.drop(columns=[target])
    numeric = features.select_dtypes("number").columns
    parts = [filled(part, [name for name in features.columns if name not in numeric]) for part in parts]
    train = parts[0]
    categorical = [name for name in features.columns if name not in numeric]
    medians = train[numeric].median()
    nums = [part[numeric].fillna(medians).to_numpy("float32") for part in parts]
    levels = {name: sorted(train[name].dropna().astype(str).unique()) for name in categorical}
    onehots = [np.concatenate([np.stack([(part[name].astype(str) == level).to_numpy("float32") for level in levels[name]], 1)
                               for name in categorical], 1) if categorical else np.zeros((len(part), 0), "float32")
               for part in parts]
    if classify:
        classes = sorted(train[target].astype(str).unique())
        labels = [part[target].astype(str).map({c: i for i, c in enumerate(classes)}).fillna(0).to_numpy("int64")
                  for part in parts]
        scale = (len(classes), 0.0, 1.0)
    else:
        mean, std = float(train[target].mean()), float(train[target].std())
        labels = [((part[target] - mean) / std).to_numpy("float32") for part in parts]
        scale = (1, mean, std)
    return nums, onehots, [len(levels[name]) for name in categorical], labels, scale


def log_labels(train, parts, target):
    """Standardized regression labels after `target_transform: log` (log1p on a target >= 0), and their scale."""
    log = bool(train[target].min() >= 0)
    values = [np.log1p(part[target].to_numpy("float64")) if log else part[target].to_numpy("float64") for part in parts]
    mean, std = float(values[0].mean()), float(values[0].std())
    return [((v - mean) / std).astype("float32") for v in values], (1, mean, std, "log" if log else "none")


def score(truth, predicted, classify):
    """Accuracy for classes, RMSE for values."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if classify:
        return float(np.mean(truth == predicted))
    return float(np.sqrt(np.mean((truth.astype(float) - predicted.astype(float)) ** 2)))


def build_network(variant: Variant, nums, onehots, cards, units, seed, leaves=0):
    """The Keras training and prediction models of one network kind (with its `~` options).

    `leaves`: the number of tree leaf columns at the end of `onehots` (the `rt` and `rf` options).
    """
    import keras

    from kerasflow.features.numeric_embeddings import (
        PeriodicEmbedding,
        PiecewiseLinearEncoding,
        QuantileNormalization,
        fit_quantile_bins,
        fit_quantiles,
    )
    from kerasflow.models.tabm_backbone import tabm_body, tabm_head, tabm_models

    numeric_in = keras.Input((nums.shape[1],), name="numeric")
    onehot_in = keras.Input((onehots.shape[1],), name="onehot")
    activation = "softmax" if units > 1 else None
    kind = variant.kind
    if kind in MLP_INPUTS:
        numbers = _mlp_numbers(MLP_INPUTS[kind], numeric_in, nums, seed, variant.get("nb", None), variant.get("gn", 0.0))
        wide = variant.get("wide", False) and leaves
        deep_in = onehot_in[:, :onehots.shape[1] - leaves] if wide else onehot_in
        x = keras.layers.Concatenate()([numbers, _categoricals(deep_in, cards, variant, seed)])
        widths, dropout, l2 = _widths(kind, nums.shape[1] + onehots.shape[1], units, len(nums))
        if "w" in variant.values or "d" in variant.values:
            widths = [variant.get("w", widths[0])] * variant.get("d", len(widths))
        dropout = variant.get("do", dropout)
        for block, width in enumerate(widths):
            dense = keras.layers.Dense(width, activation="relu", kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
                                       kernel_initializer="he_normal" if kind == "kf" or kind in DEFAULT_RECIPE
                                       else "glorot_uniform")
            x = dense(x)
            if variant.get("bn", False):
                x = keras.layers.BatchNormalization()(x)
            if dropout:
                x = keras.layers.Dropout(dropout, seed=seed + block)(x)
        outputs = keras.layers.Dense(units)(x)
        if wide:
            outputs = keras.layers.Add()([outputs, keras.layers.Dense(units)(onehot_in[:, onehots.shape[1] - leaves:])])
        model = keras.Model([numeric_in, onehot_in], outputs)
        predict = keras.Model([numeric_in, onehot_in], keras.layers.Activation(activation or "linear")(outputs))
        return model, predict
    n_quantiles = max(min(len(nums) // 30, 1000), 10)  # the TabM example's rule
    normalized = QuantileNormalization(fit_quantiles(nums, n_quantiles))(numeric_in)
    if kind == "tabm":
        x, chunks, r_init, depth = normalized, [1] * nums.shape[1], "random-signs", 3
    else:
        if kind == "tabm_plr":
            embedded = PeriodicEmbedding(d_embedding=16, n_frequencies=48, sigma=0.1, lite=True, seed=seed)(normalized)
        else:
            rows = np.asarray(QuantileNormalization(fit_quantiles(nums, n_quantiles))(nums))
            embedded = PiecewiseLinearEncoding(fit_quantile_bins(rows, variant.get("nb", 48)), d_embedding=16,
                                               seed=seed)(normalized)
        x, chunks, r_init, depth = keras.layers.Flatten()(embedded), [16] * nums.shape[1], "normal", 2
    x = keras.layers.Concatenate()([x, onehot_in])
    depth = variant.get("d", depth)
    members = tabm_head(tabm_body(x, k=variant.get("k", 32), width=variant.get("w", 512), depth=depth,
                                  dropout=variant.get("do", 0.1), r_init=r_init,
                                  r_chunks=chunks + cards, seed=seed), units, seed=seed + 100)
    return tabm_models([numeric_in, onehot_in], members, activation)


def _categoricals(onehot_in, cards, variant: Variant, seed):
    """The one-hot block, with the columns of more than `ce` levels through a learned embedding (`ce` option).

    A bias-free `Dense` on a column's one-hot slice is its embedding table (kerasflow's
    `categorical_embedding`: width `min(16, ceil(1.6 * n ** 0.56))`, uniform +-0.05 initialization).
    """
    import keras

    from kerasflow.features.encodings import embedding_size

    if "ce" not in variant.values:
        return onehot_in
    parts, offset = [], 0
    for i, card in enumerate(cards):
        piece = onehot_in[:, offset:offset + card]
        offset += card
        if card > variant.get("ce", 16):
            init = keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + 500 + i)
            piece = keras.layers.Dense(embedding_size(card + 1, "auto"), use_bias=False, kernel_initializer=init)(piece)
        parts.append(piece)
    return keras.layers.Concatenate()(parts) if len(parts) > 1 else parts[0]


def _widths(kind, width, units, rows):
    """Hidden widths, dropout and L2 of an MLP kind (`kf`: kerasflow's default rule, else 2 x 256)."""
    if kind != "kf":
        return (256, 256), 0.1, 0.0  # also kerasflow's current default (`def*`)
    from kerasflow.models.families import power_of_two

    first = power_of_two(2 * max(width, units, 1), 16, 256)
    if units == 1 and rows < 2000:
        return (first,), 0.0, 1e-3
    return (first, max(first // 2, units, 8)), 0.2 if rows < 2000 else 0.1, 1e-4


def _mlp_numbers(how, numeric_in, nums, seed, n_bins=None, noise=0.0):
    """The MLP's numeric input: standardized, quantile-normalized, or periodic / piecewise-linear embeddings."""
    import keras

    from kerasflow.features.numeric_embeddings import (
        PeriodicEmbedding,
        PiecewiseLinearEncoding,
        QuantileNormalization,
        fit_quantile_bins,
        fit_quantiles,
    )

    standardized = keras.layers.Normalization(mean=nums.mean(0), variance=nums.var(0) + 1e-9)(numeric_in)
    if noise:
        standardized = keras.layers.GaussianNoise(noise, seed=seed + 700)(standardized)
    if how == "standard":
        return standardized
    if how == "piecewise_linear_raw":  # the former probe's bug: the raw numbers into the linear embedding
        return keras.layers.Flatten()(PiecewiseLinearEncoding(fit_quantile_bins(nums, 48), d_embedding=16,
                                                              seed=seed)(numeric_in))
    if how.startswith("piecewise_linear"):  # as kerasflow: bins of the standardized training values
        n_bins = n_bins or int(how.removeprefix("piecewise_linear") or 48)
        bins = fit_quantile_bins((nums - nums.mean(0)) / np.sqrt(nums.var(0) + 1e-9), n_bins)
        return keras.layers.Flatten()(PiecewiseLinearEncoding(bins, d_embedding=16, seed=seed)(standardized))
    if how.startswith("periodic_std"):  # as kerasflow: PLR lite on the standardized numbers, sigma 0.01 unless given
        sigma = float(how.removeprefix("periodic_std") or 0.01)
        return keras.layers.Flatten()(PeriodicEmbedding(d_embedding=16, sigma=sigma, seed=seed)(standardized))
    normalized = QuantileNormalization(fit_quantiles(nums, max(min(len(nums) // 30, 1000), 10)))(numeric_in)
    if how == "quantile":
        return normalized
    return keras.layers.Flatten()(PeriodicEmbedding(d_embedding=16, n_frequencies=48, sigma=0.1, seed=seed)(normalized))


def run_network(kind, data, classify, scale, seed):
    """Trains one network (or the mean of an ensemble) with early stopping on the validation rows; returns its test score.

    A name `A|B|...` trains each network and scores the one with the lowest validation loss (log-loss,
    or MSE of the standardized values), as a choice by validation would.
    """
    labels = data[3]
    outputs = {name: _outputs(parse(name), data, classify, scale, seed) for name in kind.split("|")}
    losses = {name: _loss(valid, labels[1], classify) for name, (valid, _) in outputs.items()}
    chosen = min(losses, key=losses.get)
    if len(outputs) > 1:
        print(f"    validation losses {', '.join(f'{n} {v:.4f}' for n, v in losses.items())}: {chosen}", flush=True)
    predicted = outputs[chosen][1]
    if classify:
        return score(labels[2], predicted.argmax(1), True)
    back = np.expm1 if len(scale) > 3 and scale[3] == "log" else (lambda values: values)
    values = predicted[:, 0] if len(scale) < 5 else np.clip(predicted[:, 0], *scale[4])
    return score(back(labels[2] * scale[2] + scale[1]), back(values * scale[2] + scale[1]), False)


def _outputs(variant: Variant, data, classify, scale, seed):
    """The validation and test outputs of a network, or the means of an ensemble's (`x` option)."""
    members = [_predict(variant, data, classify, scale, seed + 1000 * member)
               for member in range(variant.get("x", ENSEMBLES.get(variant.kind, 1)))]
    return tuple(np.mean([member[part] for member in members], axis=0) for part in (0, 1))


def _loss(predicted, labels, classify):
    """Log-loss of class probabilities, or the MSE of standardized values (scikit-learn's metrics)."""
    from sklearn.metrics import log_loss, mean_squared_error

    if classify:
        return float(log_loss(labels, predicted, labels=np.arange(predicted.shape[1])))
    return float(mean_squared_error(labels, predicted[:, 0]))


def _predict(variant: Variant, data, classify, scale, seed):
    """Trains one network and returns its validation and test rows' outputs (probabilities, or standardized values)."""
    import keras

    from kerasflow.models.tabm_backbone import member_loss, tabm_optimizer

    kind = variant.kind

    keras.utils.set_random_seed(seed)
    (nums, onehots, cards, labels) = data
    if "mc" in variant.values:  # drop the one-hot columns of categoricals with more than `mc` levels
        keep = np.concatenate([np.full(card, card <= variant.get("mc", 0)) for card in cards] or [np.zeros(0, bool)])
        onehots, cards = [part[:, keep] for part in onehots], [card for card in cards if card <= variant.get("mc", 0)]
    coded = tree_leaves(variant, nums, labels[0], classify, seed)
    leaves = coded[0].shape[1] if coded else 0
    if coded:
        onehots = [np.concatenate([part, code], 1) for part, code in zip(onehots, coded)]
    units = scale[0] if classify else 1
    train_model, predict_model = build_network(variant, nums[0], onehots[0], cards, units, seed, leaves)
    base = keras.losses.SparseCategoricalCrossentropy(from_logits=True) if classify else keras.losses.MeanSquaredError()
    smoothing = variant.get("ls", 0.0)
    if classify and smoothing:
        base = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
        labels = [np.eye(units, dtype="float32")[label] for label in labels]
    rate, decay = variant.get("lr", 1e-3 if kind in MLP_INPUTS else 2e-3), variant.get("wd", None)
    if kind in MLP_INPUTS:
        optimizer = keras.optimizers.AdamW(rate, weight_decay=decay) if decay is not None else keras.optimizers.Adam(rate)
        train_model.compile(optimizer, loss=base)
    else:
        train_model.compile(tabm_optimizer(rate, 3e-4 if decay is None else decay), loss=member_loss(base))
    callbacks = [keras.callbacks.EarlyStopping(patience=20 if kind == "kf" else 10, restore_best_weights=True)]
    batch, epochs = 32, 100
    if kind == "kf" or kind in DEFAULT_RECIPE:
        from kerasflow.models.families import power_of_two

        batch, epochs = power_of_two(len(nums[0]) / (50 if kind == "kf" else 100), 16 if kind == "kf" else 32, 256), 300
        callbacks = [keras.callbacks.EarlyStopping(patience=variant.get("p", 20), restore_best_weights=True),
                     keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=variant.get("rp", 8))]
    elif "p" in variant.values:
        callbacks = [keras.callbacks.EarlyStopping(patience=variant.get("p", 10), restore_best_weights=True)]
    batch = variant.get("b", batch)
    weights = class_weights(labels[0], units) if classify and variant.get("bal", False) else None
    y = [label if classify else label[:, None] for label in labels]
    train_model.fit([nums[0], onehots[0]], y[0], validation_data=([nums[1], onehots[1]], y[1]),
                    epochs=epochs, batch_size=batch, callbacks=callbacks, verbose=0, class_weight=weights)
    return tuple(np.asarray(predict_model([nums[part], onehots[part]], training=False)) for part in (1, 2))


def probe(name, seeds, models):
    """Scores every model on one set over the seeds; returns `{model: [score per seed]}` and its task."""
    frame, target, _ = load(name)
    task = describe(frame, target)["task"]
    classify = task != "regression"
    results = {model: [] for model in models}
    for seed in range(seeds):
        train, valid, test = split(frame, target, seed, classify)
        nums, onehots, cards, labels, scale = encode(train, (train, valid, test), target, classify)
        logged = None if classify else log_labels(train, (train, valid, test), target)
        for model in models:
            started = time.perf_counter()
            if model in SKLEARN:
                value = score(test[target].astype(str) if classify else test[target],
                              run_sklearn(model, pd.concat([train, valid]), test, target, classify, seed), classify)
            elif model.endswith("_log") and logged is not None:
                value = run_network(model.removesuffix("_log"), (nums, onehots, cards, logged[0]), classify, logged[1], seed)
            elif model.endswith("_logc") and logged is not None:  # outputs clipped to the training labels' range
                bounds = (float(logged[0][0].min()), float(logged[0][0].max()))
                value = run_network(model.removesuffix("_logc"), (nums, onehots, cards, logged[0]), classify,
                                    (*logged[1], bounds), seed)
            else:
                value = run_network(model.removesuffix("_log"), (nums, onehots, cards, labels), classify, scale, seed)
            results[model].append(value)
            print(f"  {name} seed {seed} {model:<9} {value:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
    return results, task


def main(argv=None):
    """Runs the probe and prints mean ± sd per set and model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", default=list(DEFAULT_SETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(argv)
    from kerasflow.heavy import import_tensorflow
    from kerasflow.quiet import silence

    silence()
    import_tensorflow()
    models = args.models.split(",")
    table = {name: probe(name, args.seeds, models) for name in args.sets}
    print(f"\n{'set':<16}{'metric':<10}" + "".join(f"{model:>17}" for model in models))
    for name, (results, task) in table.items():
        metric = "RMSE" if task == "regression" else "accuracy"
        cells = "".join(f"{np.mean(v):>10.4f} ± {np.std(v):.3f}" for v in results.values())
        print(f"{name:<16}{metric:<10}{cells}")


if __name__ == "__main__":
    main()
