"""Text encoders and the `text` model family.

A `TextEncoder` turns a raw string tensor into one vector per row:
`TextVectorization` (vocabulary from a fitted `TextSpec`), then either dense
layers on bag-of-words vectors, or an embedding (trainable, or initialized
from pretrained vectors and frozen) followed by average pooling, stacked
(optionally bidirectional) SimpleRNN/LSTM/GRU layers, Conv1D blocks with
global max pooling, or a Conv1D block feeding a GRU. Calling one encoder on
several inputs applies the same layers, so their weights are shared.

Every encoder setting is read through `choose`, so a tuner search can vary
it (`model.encoder`, `model.units`, `model.embedding_dim`, ... for the
`text` family; `model.text.<param>` inside functional models).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasflow.features.labels import inverse_target, training_loss
from kerasflow.features.outputs import fit_model_inputs
from kerasflow.features.tabular import VECTORIZED_PREFIX, FeatureError, text_input_name
from kerasflow.features.text import TextSpec, embedding_matrix, vectors_dim
from kerasflow.models.families import TextSection, learning_rate_space, register_family
from kerasflow.models.hyper import build_optimizer, choose, widths_around
from kerasflow.schemas.config import PipelineConfig
from kerasflow.schemas.text import RECURRENT_ENCODERS, TextEncoderConfig, TextModelConfig, conv_output_length


class TextEncoder:
    """The layers of one text branch, callable on string tensors.

    Args:
        hp: Keras Tuner hyperparameters, or None for config values.
        spec: The `ModelSpec` (search space, seed).
        cfg: The encoder section.
        text: The fitted `TextSpec` (vocabulary).
        prefix: Dotted prefix of the tunable names, e.g. `model`.
        name: Layer-name stem, unique within the model.
    """

    def __init__(self, hp: Any, spec: Any, cfg: TextEncoderConfig, text: TextSpec, prefix: str, name: str):
        self.name = name
        self.seed = spec.seed
        self.encoder = choose(hp, spec, f"{prefix}.encoder", cfg.encoder)
        self.units = choose(hp, spec, f"{prefix}.units", cfg.units)
        self.depth = choose(hp, spec, f"{prefix}.layers", cfg.layers)
        self.bidirectional = choose(hp, spec, f"{prefix}.bidirectional", cfg.bidirectional)
        self.dropout = choose(hp, spec, f"{prefix}.dropout", cfg.dropout)
        self.recurrent_dropout = choose(hp, spec, f"{prefix}.recurrent_dropout", cfg.recurrent_dropout)
        self.filters = choose(hp, spec, f"{prefix}.filters", cfg.filters)
        self.kernel_size = choose(hp, spec, f"{prefix}.kernel_size", cfg.kernel_size)
        self.pool_size = cfg.pool_size
        self.activation = getattr(cfg, "activation", "relu")
        self._check(text, prefix)
        self.vectorizer = BagVectorizer(text, name)
        self.embedding = None
        if self.encoder != "bag":
            dim = choose(hp, spec, f"{prefix}.embedding_dim", cfg.embedding.size)
            self.embedding = build_embedding(cfg, text, dim, prefix, f"embedding_{name}", spec.seed)
        self.layers = self._encoder_layers()

    def __call__(self, strings: Any) -> Any:
        """Encodes a `(batch, 1)` string tensor into a `(batch, features)` tensor."""
        return self.encode(self.vectorizer(strings))

    def encode(self, x: Any) -> Any:
        """Encodes the vectorizer's output (bag vectors or token ids) into a `(batch, features)` tensor."""
        if self.embedding is not None:
            x = self.embedding(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def _check(self, text: TextSpec, prefix: str) -> None:
        if (self.encoder == "bag") != (text.output_mode != "int"):
            raise FeatureError(f"{prefix}.encoder {self.encoder} does not fit vectorize.output_mode "
                               f"{text.output_mode}: bag needs bag-of-words vectors, the others int sequences")
        if self.encoder in ("conv1d", "conv1d_gru"):
            blocks = self.depth if self.encoder == "conv1d" else 1
            if conv_output_length(text.sequence_length or 0, self.kernel_size, self.pool_size, blocks,
                                  pool_last=self.encoder == "conv1d_gru") < 1:
                raise FeatureError(f"{prefix}.kernel_size {self.kernel_size} with {blocks} Conv1D layer(s) does "
                                   f"not fit sequences of {text.sequence_length} tokens")

    def _encoder_layers(self) -> list[Any]:
        import keras

        n, layers = self.name, []
        if self.encoder == "bag":
            for i in range(self.depth):
                layers.append(keras.layers.Dense(self.units, activation=self.activation, name=f"{n}_dense_{i}"))
                layers += self._dropout(f"{n}_dropout_{i}", self.seed + i)
            return layers
        layers += self._dropout(f"{n}_embedding_dropout", self.seed) if self.encoder not in RECURRENT_ENCODERS else []
        if self.encoder == "average":
            from kerasflow.features.text_layers import MaskedAverage  # deferred: text_layers imports TensorFlow

            layers.append(MaskedAverage(name=f"{n}_average"))
        elif self.encoder in RECURRENT_ENCODERS:
            layers += [self._recurrent(self.encoder, i, i < self.depth - 1) for i in range(self.depth)]
        elif self.encoder == "conv1d":
            for i in range(self.depth):
                layers.append(self._conv(i))
                if i < self.depth - 1:
                    layers.append(keras.layers.MaxPooling1D(self.pool_size, name=f"{n}_pool_{i}"))
            layers.append(keras.layers.GlobalMaxPooling1D(name=f"{n}_global_max"))
        else:  # conv1d_gru
            layers += [self._conv(0), keras.layers.MaxPooling1D(self.pool_size, name=f"{n}_pool_0")]
            layers += [self._recurrent("gru", i, i < self.depth - 1) for i in range(self.depth)]
        return layers + self._dropout(f"{n}_dropout", self.seed + 101)

    def _recurrent(self, kind: str, i: int, return_sequences: bool) -> Any:
        import keras

        classes = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
        layer = classes[kind](self.units, return_sequences=return_sequences, dropout=self.dropout,
                              recurrent_dropout=self.recurrent_dropout, seed=self.seed + i,
                              name=f"{self.name}_{kind}_{i}")
        if self.bidirectional:
            return keras.layers.Bidirectional(layer, name=f"{self.name}_bidirectional_{i}")
        return layer

    def _conv(self, i: int) -> Any:
        import keras

        return keras.layers.Conv1D(self.filters, self.kernel_size, activation="relu", name=f"{self.name}_conv1d_{i}")

    def _dropout(self, name: str, seed: int) -> list[Any]:
        import keras

        return [keras.layers.Dropout(self.dropout, seed=seed, name=name)] if self.dropout else []


class BagVectorizer:
    """The vectorization of one text branch: one `TextVectorization` per analyzer, concatenated.

    A word analyzer whose n-grams start at 1 splits on whitespace with
    Keras's own n-grams (the layer every earlier model has); other
    analyzers split with the registered `Analyzer`. With `sublinear_tf` or
    `l2_normalize`, each analyzer's counts go through a `TermWeights` layer
    (its IDF weights, `1 + log(count)`, unit norm per analyzer, as
    scikit-learn's union of `TfidfVectorizer`s).

    Args:
        text: The fitted spec (its `union` holds the further analyzers).
        name: Layer-name stem of the branch.
    """

    def __init__(self, text: TextSpec, name: str):
        import keras

        from kerasflow.features.text_layers import TermWeights  # deferred: text_layers imports TensorFlow

        self.steps = []
        specs = text.analyzers
        weighted = text.output_mode != "int" and (text.sublinear_tf or text.l2_normalize)
        for i, part in enumerate(specs):
            layer_name = f"{VECTORIZED_PREFIX}{name}" + (f"_{i}" if i else "")
            layer = build_vectorizer(part, layer_name, counts=weighted and part.output_mode in ("count", "tf_idf"))
            weights = None
            if weighted:
                idf = [float(np.mean(part.idf_weights)), *part.idf_weights] if part.output_mode == "tf_idf" else None
                weights = TermWeights(idf, sublinear=text.sublinear_tf and part.output_mode != "multi_hot",
                                      l2_normalize=text.l2_normalize, name=f"{layer_name}_weights")
            self.steps.append((layer, weights))
        self.concat = keras.layers.Concatenate(name=f"{VECTORIZED_PREFIX}{name}_union") if len(specs) > 1 else None

    def __call__(self, strings: Any) -> Any:
        """Vectorizes a `(batch, 1)` string tensor."""
        parts = []
        for layer, weights in self.steps:
            x = layer(strings)
            parts.append(weights(x) if weights is not None else x)
        return self.concat(parts) if self.concat is not None else parts[0]


def build_vectorizer(text: TextSpec, name: str, counts: bool = False) -> Any:
    """Creates the `TextVectorization` layer of a fitted text spec's own analyzer.

    Args:
        text: The fitted spec (vocabulary, mode, length, standardizer, analyzer).
        name: Layer name.
        counts: Output raw `count`s instead of `tf_idf` (a `TermWeights`
            layer weights them). Default false.

    Returns:
        A `keras.layers.TextVectorization` that needs no `adapt`.
    """
    import keras

    from kerasflow.features.text_layers import Analyzer, standardizer  # deferred: text_layers imports TensorFlow

    plain = text.analyzer == "word" and text.ngram_min == 1
    mode = "count" if counts else text.output_mode
    return keras.layers.TextVectorization(
        standardize=standardizer(text.standardize),
        split="whitespace" if plain else Analyzer(text.analyzer, text.ngram_range),
        ngrams=text.ngrams if plain and text.ngrams > 1 else None,
        output_mode=mode,
        output_sequence_length=text.sequence_length if text.output_mode == "int" else None,
        vocabulary=text.vocabulary,
        idf_weights=text.idf_weights if mode == "tf_idf" else None,
        name=name,
    )


def build_embedding(cfg: TextEncoderConfig, text: TextSpec, dim: int, prefix: str, name: str, seed: int) -> Any:
    """Creates the token embedding, with pretrained weights when configured.

    Args:
        cfg: The encoder section (`embedding`).
        text: The fitted spec (vocabulary).
        dim: Embedding size (ignored with pretrained vectors, whose size wins).
        prefix: Dotted prefix of the section, for error messages.
        name: Layer name.
        seed: Seed of the rows of words without a pretrained vector.

    Returns:
        A `keras.layers.Embedding`; pretrained weights are set, and frozen
        unless `embedding.trainable`.

    Raises:
        FeatureError: The pretrained file is missing or malformed, or its
            dimension differs from `embedding.dim`.
    """
    import keras

    emb = cfg.embedding
    mask = emb.mask_padding and cfg.encoder not in ("conv1d", "conv1d_gru")
    if not emb.pretrained:
        return keras.layers.Embedding(text.input_dim, dim, mask_zero=mask, trainable=emb.trainable, name=name)
    size = vectors_dim(emb.pretrained)
    if emb.dim is not None and emb.dim != size:
        raise FeatureError(f"{prefix}.embedding.dim is {emb.dim} but the vectors in {emb.pretrained} have {size} "
                           "dimensions; drop dim or make them equal")
    matrix = embedding_matrix(text.vocabulary, emb.pretrained, seed=seed)
    return keras.layers.Embedding(text.input_dim, size, mask_zero=mask, trainable=emb.trainable,
                                  weights=[matrix], name=name)


def text_input(column: str) -> Any:
    """Creates the raw string input of a text column, shape `(batch, 1)`."""
    import keras

    return keras.Input(shape=(1,), dtype="string", name=text_input_name(column))


def build_text_model(hp: Any, spec: Any) -> Any:
    """Builds and compiles a `text` model: raw strings in, labels out.

    Args:
        hp: Keras Tuner hyperparameters, or None for config values.
        spec: The `ModelSpec`; `spec.model` is a `TextModelConfig` and
            `spec.features.text` holds the column's fitted `TextSpec`.

    Returns:
        A compiled `keras.Model` with one string input.
    """
    import keras

    cfg = spec.model
    text = text_specs(spec.features)[0]
    inputs = {text_input_name(cfg.column): text_input(cfg.column)}
    encoder = TextEncoder(hp, spec, cfg, text, "model", "text")
    vectors = encoder.vectorizer(inputs[text_input_name(cfg.column)])
    x = encoder.encode(vectors)
    for i, default in enumerate(cfg.head_units):
        units = choose(hp, spec, "model.head_units", default)
        x = keras.layers.Dense(units, activation=cfg.activation, name=f"head_dense_{i}")(x)
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, seed=spec.seed + 200 + i, name=f"head_dropout_{i}")(x)
    if cfg.wide:  # the bag vectors straight into the output layer: a linear model beside the network
        x = keras.layers.Concatenate(name="wide_and_deep")([x, vectors])
    units, activation, loss = spec.labels.output()
    outputs = inverse_target(keras.layers.Dense(units, activation=activation, name="output")(x), spec.labels)
    model = keras.Model(inputs=inputs, outputs=outputs, name="kerasflow_text")
    model.compile(optimizer=build_optimizer(hp, spec), loss=training_loss(spec.labels), metrics=spec.labels.metrics())
    return model


def text_specs(features: Any) -> list[TextSpec]:
    """Returns the fitted text branches stored in a `FeatureSpec`."""
    return [TextSpec.from_dict(item) for item in features.text]


def default_values(model: TextModelConfig) -> dict[str, Any]:
    """Returns the config value of every tunable name of a `text` model, as `build_text_model` uses it.

    Args:
        model: The `TextModelConfig`.

    Returns:
        `{dotted name: value}`.
    """
    return {**encoder_defaults(model, "model"), "model.head_units": model.head_units[0] if model.head_units else None}


def encoder_defaults(encoder: TextEncoderConfig, prefix: str) -> dict[str, Any]:
    """Returns the config value of every tunable name of a text encoder section.

    Args:
        encoder: The encoder section (a `TextModelConfig`, or a functional
            model's `text`).
        prefix: Dotted prefix of its tunable names, e.g. `model` or `model.text`.

    Returns:
        `{dotted name: value}`, what `TextEncoder` uses without a tuner.
    """
    values = {f"{prefix}.{name}": getattr(encoder, name) for name in (
        "encoder", "units", "layers", "bidirectional", "dropout", "recurrent_dropout", "filters", "kernel_size")}
    values[f"{prefix}.embedding_dim"] = encoder.embedding.size
    return values


def fit_text_inputs(config: PipelineConfig, train: Any) -> Any:
    """Fits a `text` model's vocabulary and labels on the training rows.

    Args:
        config: The pipeline config; `model` is a `TextModelConfig`.
        train: The training rows only.

    Returns:
        The `kerasflow.features.outputs.FittedInputs`.

    Raises:
        FeatureError: `data.features` lists other columns, the column is
            missing or the text has no tokens.
    """
    d, column = config.data, config.model.column
    if d.features not in (None, [column]) or d.categorical:
        raise FeatureError(f"a text model reads only its text column {column!r} (model.column); "
                           "use model.kind functional to add tabular columns (data.features, data.categorical)")
    return fit_model_inputs(config, train, branches=[(column, column, "all")], numeric=[], categorical=[],
                            encoder=config.model, encoder_path="model.")


CHAR_NGRAMS = {"analyzer": "char_wb", "ngrams": [2, 5], "max_tokens": 30000}
"""The character analyzer the default bag adds to words and word pairs."""


def default_section(config: PipelineConfig, profile: Any) -> dict[str, Any] | None:
    """The `model` section of a table with a free-text column and no `model`.

    A TF-IDF bag of words and word pairs united with `char_wb` 2-5-grams
    (sublinear TF, each analyzer's vector of unit norm, as scikit-learn's
    union of `TfidfVectorizer`s: the features of the char n-gram TF-IDF +
    logistic regression baseline, and words besides) into a small dense
    layer, at every text length (`default_training`: shorter patience).

    Measured (`benchmarks/text_probe.py`, the fine-food reviews, seeds 0-2
    on its test file; TF-IDF char_wb 2-5 with sublinear tf and min_df 2 +
    LogisticRegression: 0.8030, 0.7520 when cut to 120 characters): words
    alone 0.8053, the union 0.8073 ± 0.0012 (patience 20), the union with
    `wide` 0.8043 ± 0.0037 (not chosen; the same per seed at patience 6 and
    20: the best epoch is the 4th to 6th), on reviews cut to 120 characters
    the union 0.7553 ± 0.0061 (patience 6).
    Whole pipeline (`benchmarks/quality.py --sets fine_foods --seeds 3`,
    its own 80/20 splits, seeds 0-2): 0.8110, 0.8210, 0.8100 (0.8140 ±
    0.0061) against the baseline's 0.7980, 0.8110, 0.8070 (0.8053 ± 0.0067);
    the former default (words alone, patience 20) had 0.8090, 0.7880, 0.8040
    (0.8003) at about half the time (167 s a run against 318 s, seeds 1-2
    on the shared, busy machine).

    Args:
        config: The config as written.
        profile: Its data's `DataProfile` (`text_columns`).

    Returns:
        The section, or None without a text column.
    """
    if not profile.text_columns:
        return None
    vectorize = {"max_tokens": 20000, "output_mode": "tf_idf", "ngrams": 2, "standardize": "lower_strip_html",
                 "sublinear_tf": True, "l2_normalize": True, "union": [dict(CHAR_NGRAMS)]}
    return {"kind": "text", "column": profile.text_columns[0], "encoder": "bag", "units": 32, "dropout": 0.5,
            "vectorize": vectorize}


def default_training(training: dict[str, Any], profile: Any) -> dict[str, Any]:
    """The `training` section of a text model without one: shorter patience.

    A bag of TF-IDF vectors fits its training rows in a few epochs and then
    overfits (the best validation loss of the fine-food reviews comes after
    4 to 6 epochs): the table defaults' patience of 20 spent three quarters
    of a run waiting.

    Args:
        training: The section chosen for any model (`kerasflow.lint.defaults`).
        profile: The data's profile (unused).

    Returns:
        The section with early-stopping patience 6 and learning-rate patience 3.
    """
    return {**training, "early_stopping": {**training["early_stopping"], "patience": 6},
            "reduce_lr": {**training["reduce_lr"], "patience": 3}}


def default_space(config: PipelineConfig, profile: Any) -> dict[str, Any]:
    """The `tuning.space` of a text model whose `tuning` section leaves it out: small, as the bag is strong.

    The learning rate (a third to three times the configured one), the
    encoder's units (half to twice the configured) and its dropout (0.1 to
    0.6).

    Args:
        config: The pipeline config, with its defaults in place.
        profile: Its data's `DataProfile` (unused: the space follows the section).

    Returns:
        `{dotted name: parameter}`.
    """
    return {**learning_rate_space(config),
            "model.units": {"type": "choice", "values": widths_around(config.model.units, below=1, cap=512)},
            "model.dropout": {"type": "float", "min": 0.1, "max": 0.6, "step": 0.1}}


def _describe(section: dict[str, Any]) -> str:
    extra = "".join(f" + {a['analyzer']} {'-'.join(map(str, a['ngrams']))}-grams"
                    for a in section.get("vectorize", {}).get("union", []))
    wide = ", wide & deep" if section.get("wide") else ""
    return f" on '{section['column']}'" + (f" (words{extra}{wide})" if extra or wide else "")


def _dropouts(model: TextModelConfig) -> list[tuple[str, float]]:
    return [("model.dropout", model.dropout), ("model.recurrent_dropout", model.recurrent_dropout)]


register_family("text", build=build_text_model, default_values=default_values, tabular=False,
                feature_columns=lambda model: ([model.column], [model.column]), fit_inputs=fit_text_inputs,
                text=lambda model: TextSection("model.", model, [model.column]),
                hidden_layers=lambda model: [(f"model.head_units[{i}]", u) for i, u in enumerate(model.head_units)],
                dropouts=_dropouts, default_section=default_section, default_rank=10, default_training=default_training,
                describe_section=_describe, default_space=default_space)
