"""Text preprocessing that travels inside exported kerasflow models.

The standardizer is a registered Keras function, so a `TextVectorization`
layer that uses it survives `model.save` / `load_model`; `TextSegment` is a
registered layer that picks one part of a text (its first sentence or the
rest) inside the graph. Both run on `tf.string` tensors with RE2 regexes,
and vocabulary fitting calls the very same functions, so training, tuning
and serving see identical tokens.

Shipped with every logged model (MLflow `code_paths`): imports nothing from
kerasflow beyond Keras and TensorFlow.
"""

from __future__ import annotations

import keras
import tensorflow as tf

HTML_TAG = r"<[^>]*>"
HTML_ENTITY = r"&[a-zA-Z]+;|&#[0-9]+;"
APOSTROPHE = r"['’]"
PUNCTUATION = r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~“”‘«»…–—]"
SENTENCE_END = r"[.!?]"
WHITESPACE_RUNS = r"\s\s+"
ANALYZERS = ("word", "char", "char_wb")
STANDARDIZERS = ("lower_strip_html", "lower_and_strip_punctuation", "lower", "strip_punctuation", "none")
SEGMENTS = ("all", "first_sentence", "rest")


@keras.saving.register_keras_serializable(package="kerasflow")
def lower_strip_html(text):
    """Lowercases, drops HTML tags and entities, and splits off punctuation.

    `<br />` and `&amp;` become spaces, apostrophes vanish (`don't` ->
    `dont`), other punctuation becomes a space, so `great.I` gives the two
    tokens `great` and `i`.

    Args:
        text: A `tf.string` tensor.

    Returns:
        The standardized strings, same shape.
    """
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, HTML_TAG, " ")
    text = tf.strings.regex_replace(text, HTML_ENTITY, " ")
    text = tf.strings.regex_replace(text, APOSTROPHE, "")
    return tf.strings.regex_replace(text, PUNCTUATION, " ")


def standardizer(name: str):
    """Returns the `standardize` argument of `TextVectorization` for a config name.

    Args:
        name: One of `STANDARDIZERS`.

    Returns:
        A registered function, a Keras built-in name, or None for `none`.
    """
    if name == "lower_strip_html":
        return lower_strip_html
    return None if name == "none" else name


def analyze(text, analyzer: str = "word", ngram_range: tuple[int, int] = (1, 1)):
    """Splits standardized texts into the tokens of a scikit-learn analyzer.

    `word`: whitespace-separated words and their n-grams joined by a space;
    `char`: character n-grams of the text, runs of whitespace collapsed to
    one space first; `char_wb`: character n-grams inside each word padded
    with a space on both sides, a word shorter than an n-gram counted once
    whole. The same tokens as `TfidfVectorizer(analyzer=..., ngram_range=...)`
    on the same standardized text, in another order.

    Args:
        text: A 1-D `tf.string` tensor.
        analyzer: `word` (default), `char` or `char_wb`.
        ngram_range: `(smallest, largest)` n-gram size. Default `(1, 1)`.

    Returns:
        A `tf.RaggedTensor` of tokens, one row per text.
    """
    low, high = ngram_range
    widths = tuple(range(low, high + 1))
    if analyzer == "word":
        return tf.strings.ngrams(tf.strings.split(text), ngram_width=widths, separator=" ")
    text = tf.strings.regex_replace(text, WHITESPACE_RUNS, " ")
    if analyzer == "char":
        return tf.strings.ngrams(tf.strings.unicode_split(text, "UTF-8"), ngram_width=widths, separator="")
    words = tf.strings.split(text)
    padded = tf.strings.regex_replace(words.flat_values, "^(.*)$", r" \1 ")
    chars = tf.strings.unicode_split(padded, "UTF-8")
    grams = [tf.strings.ngrams(chars, ngram_width=n, separator="", preserve_short_sequences=n == low)
             for n in widths]
    per_word = tf.concat(grams, axis=1) if len(grams) > 1 else grams[0]
    return tf.RaggedTensor.from_row_splits(per_word, words.row_splits).merge_dims(1, 2)


@keras.saving.register_keras_serializable(package="kerasflow")
class Analyzer:
    """The `split` of a `TextVectorization` layer that yields an analyzer's tokens.

    A serializable callable (`get_config` / `from_config`), so a model whose
    vectorization counts character n-grams survives `model.save` /
    `load_model` and serving. See `analyze`.

    Args:
        analyzer: `word`, `char` or `char_wb`.
        ngram_range: `(smallest, largest)` n-gram size.
    """

    def __init__(self, analyzer: str = "word", ngram_range: tuple[int, int] = (1, 1)):
        if analyzer not in ANALYZERS:
            raise ValueError(f"analyzer must be one of {ANALYZERS}, got {analyzer!r}")
        self.analyzer = analyzer
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))

    def __call__(self, text):
        return analyze(text, self.analyzer, self.ngram_range)

    def get_config(self) -> dict:
        return {"analyzer": self.analyzer, "ngram_range": list(self.ngram_range)}

    @classmethod
    def from_config(cls, config: dict) -> "Analyzer":
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerasflow")
class TermWeights(keras.layers.Layer):
    """Turns token counts into sublinear TF(-IDF) vectors, optionally of unit L2 norm.

    Reads the `count` output of a `TextVectorization` layer: each count `c`
    becomes `1 + log(c)` (0 stays 0) when `sublinear`, is multiplied by its
    token's IDF weight when `idf_weights` are given, and each row is scaled
    to unit L2 norm when `l2_normalize`.

    Args:
        idf_weights: One weight per output column, or None (no IDF).
        sublinear: Use `1 + log(count)`. Default false.
        l2_normalize: Scale rows to unit L2 norm. Default false.
    """

    def __init__(self, idf_weights=None, sublinear: bool = False, l2_normalize: bool = False, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.idf_weights = None if idf_weights is None else [float(w) for w in idf_weights]
        self.sublinear = bool(sublinear)
        self.l2_normalize = bool(l2_normalize)

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")
        if self.sublinear:
            x = keras.ops.where(x > 0, 1.0 + keras.ops.log(keras.ops.maximum(x, 1.0)), 0.0)
        if self.idf_weights is not None:
            x = x * keras.ops.convert_to_tensor(self.idf_weights, dtype="float32")
        if self.l2_normalize:
            norm = keras.ops.sqrt(keras.ops.sum(x * x, axis=-1, keepdims=True))
            x = x / keras.ops.maximum(norm, 1e-12)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "idf_weights": self.idf_weights, "sublinear": self.sublinear,
                "l2_normalize": self.l2_normalize}


def segment_text(text, part: str):
    """Selects the first sentence of each text, or everything after it.

    A sentence ends at the first run of `.`, `!` or `?`; a text without
    one is all first sentence and has an empty rest.

    Args:
        text: A `tf.string` tensor.
        part: `all`, `first_sentence` or `rest`.

    Returns:
        The selected strings, same shape.
    """
    if part == "first_sentence":
        return tf.strings.regex_replace(text, rf"(?s)^(\s*[^.!?]*{SENTENCE_END}*).*$", r"\1")
    if part == "rest":
        return tf.strings.regex_replace(text, rf"(?s)^\s*[^.!?]*{SENTENCE_END}*", "", replace_global=False)
    return text


@keras.saving.register_keras_serializable(package="kerasflow")
class TextSegment(keras.layers.Layer):
    """Keeps one part of each input text: the first sentence or the rest.

    Lets one raw text column feed two branches of a functional model (e.g.
    a review's opening line and its body through a shared encoder) while
    the model still takes the raw column.

    Args:
        part: `first_sentence` or `rest`.
    """

    def __init__(self, part: str, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if part not in SEGMENTS:
            raise ValueError(f"part must be one of {SEGMENTS}, got {part!r}")
        self.part = part
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    @property
    def compute_dtype(self):
        return "string"

    @property
    def variable_dtype(self):
        return "string"

    def call(self, inputs):
        return segment_text(tf.convert_to_tensor(inputs, dtype=tf.string), self.part)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="string")

    def get_config(self):
        return {**super().get_config(), "part": self.part}


@keras.saving.register_keras_serializable(package="kerasflow")
class MaskedAverage(keras.layers.Layer):
    """Mean of token vectors over unmasked positions; zeros for an empty text.

    `GlobalAveragePooling1D` divides by the number of unmasked tokens, which
    is 0 for an empty text (or an empty segment) and gives NaN.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return keras.ops.mean(inputs, axis=1)
        weights = keras.ops.expand_dims(keras.ops.cast(mask, inputs.dtype), -1)
        total = keras.ops.sum(inputs * weights, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])
