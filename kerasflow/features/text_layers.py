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
