"""Config section of standardization, vectorization and the tabular encodings (`preprocessing`).

Re-exported by `kerasflow.schemas.config`, where `PipelineConfig` uses it.
This module imports only `kerasflow.schemas.base`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from kerasflow.schemas.base import NumericEmbedding, PositiveInt, Section


class CategoricalEmbeddingConfig(Section):
    """Learned embeddings for categorical columns with many levels, instead of one-hot vectors.

    Args:
        above: Columns with more than this many training levels are
            embedded; the others stay one-hot. Default 16.
        dim: The embedding width, or `auto` (default):
            `min(16, ceil(1.6 * n ** 0.56))` for a table of `n` rows (the
            training levels plus the out-of-vocabulary slot), fastai's rule
            of thumb capped at 16.
    """

    above: Annotated[int, Field(ge=0)] = 16
    dim: PositiveInt | Literal["auto"] = "auto"


class PreprocessingConfig(Section):
    """Standardization, vectorization and the tabular encodings, fitted on training rows only.

    Args:
        normalize: How numeric columns are normalized: `standard` (default,
            z-scores with a `Normalization` layer), `quantile` (each column
            mapped through its training quantiles to a standard normal,
            `min(max(rows // 30, 10), 1000)` quantiles, as in the TabM paper)
            or `none`. `true` and `false` still mean `standard` and `none`.
        impute: How missing numeric values are filled: `mean` (default),
            `median` or `zero`, using training statistics.
        max_categories: Keep at most this many most frequent levels per
            categorical column; the rest map to the out-of-vocabulary slot.
        non_finite: What the data contract does with ±inf and with numbers
            beyond float32's range (about ±3.4e38) in numeric features:
            `fail` (default) stops the run naming column and rows; `clip`
            clips them to the column's largest finite training-range
            values; `missing` treats them as missing (imputed).
        invalid_numbers: What it does with the few text tokens (`n/a`,
            `abc`) in a column whose values are mostly numbers: `missing`
            (default) treats them as missing values, with a warning that
            names the tokens; `fail` stops the run. Such a column is never
            silently made categorical.
        drop_constant: Drop features with a single value (they carry no
            information), with a warning that names them. Applies when
            `data.features` is not listed. Default true.
        numeric_embedding: How numeric columns enter a tabular network
            (`dense`, `tabm`): `none` (default), `periodic` (PLR embeddings
            with trainable frequencies) or `piecewise_linear` (piecewise-linear
            encoding on quantile bins fitted on the training rows, plus a
            linear embedding), each 16 wide per column (Gorishniy et al.,
            NeurIPS 2022). A search may vary it (`preprocessing.numeric_embedding`).
            A config that leaves out `model` gets `piecewise_linear` with the
            dense network its data choose (`kerasflow.lint.defaults`).
        numeric_bins: The largest number of quantile bins per numeric
            column of the `piecewise_linear` embedding (fewer when a column
            has fewer distinct values). Default 48 (the paper's), also
            for the defaults (`benchmarks/tabular_probe.py` measured 8).
        numeric_bin_edges: Where the `piecewise_linear` bins' edges fall:
            `quantile` (default: each bin holds about as many training
            rows) or `target` (the thresholds of a decision tree fitted on
            each column alone to predict the label, the paper's
            "target-aware" bins: narrow where the label changes, wide where
            it does not; `kerasflow.features.encodings.fit_target_bins`).
            Fitted on the training rows only (a fixed sample of 100,000 on
            larger tables), of each fold in k-fold runs and searches.
            Needs one label column (not listed output heads).
        categorical_embedding: Embed categorical columns with many levels
            instead of one-hot encoding them (`CategoricalEmbeddingConfig`).
            Default none: every column one-hot. A config that leaves out
            `model` gets `{above: 32}` on a table of 1,000 rows or more with
            such a column (`kerasflow.lint.defaults`).
        target_transform: What a regression network learns in place of its
            label (one output on `data.target`; listed output heads
            standardize their own): `none` (the standardized label),
            `log` (the standardized `log1p(label)`; labels must be >= 0)
            or `auto` (default): `log` when the training labels are all
            >= 0 and their skewness exceeds 2 (heavy-tailed amounts,
            counts, incomes; `kerasflow.features.labels.skewed_target`),
            else `none`. Fitted on the training rows only; the model's last
            layer maps its output back (`expm1` after de-standardizing,
            clipped to the training labels' range), so predictions,
            metrics, serving and the baseline comparison stay in the
            label's units.
            A streamed table fits it in its one pass over the training
            rows (`auto` judges the skewness on the sample).
    """

    normalize: Literal["standard", "quantile", "none"] = "standard"
    impute: Literal["mean", "median", "zero"] = "mean"
    max_categories: PositiveInt | None = None
    non_finite: Literal["fail", "clip", "missing"] = "fail"
    invalid_numbers: Literal["missing", "fail"] = "missing"
    drop_constant: bool = True
    numeric_embedding: NumericEmbedding = "none"
    numeric_bins: PositiveInt = 48
    numeric_bin_edges: Literal["quantile", "target"] = "quantile"
    categorical_embedding: CategoricalEmbeddingConfig | None = None
    target_transform: Literal["none", "log", "auto"] = "auto"

    @field_validator("normalize", mode="before")
    @classmethod
    def _booleans_name_a_normalization(cls, value: Any) -> Any:
        return {True: "standard", False: "none"}.get(value, value) if isinstance(value, bool) else value
