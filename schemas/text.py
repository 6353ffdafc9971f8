"""Config models of text pipelines: vectorization, embeddings and sequence encoders.

A text pipeline sets a `model` of kind `text`: one text column, vectorized by
a `TextVectorization` layer inside the model (vocabulary fitted on training
rows only), embedded, encoded and classified:

    model:
      kind: text
      column: review
      vectorize: {max_tokens: 10000, output_mode: int, sequence_length: 200}
      embedding: {dim: 50, pretrained: data/fine_foods/vectors_50d.txt, trainable: false}
      encoder: gru
      units: 32
      bidirectional: true

`encoder: bag` is a dense network on `multi_hot`/`count`/`tf_idf` vectors;
every other encoder reads `int` token sequences through an embedding. Bag
vectors can count character n-grams (`analyzer: char` or `char_wb`, as
scikit-learn's `TfidfVectorizer`), and concatenate several analyzers, each
with its own n-gram range and vocabulary (scikit-learn's `FeatureUnion`):

    vectorize:
      output_mode: tf_idf
      ngrams: 2                     # words and word pairs
      union: [{analyzer: char_wb, ngrams: [2, 5], max_tokens: 30000}]

This module imports only `kerasflow.schemas.base`, so `kerasflow.schemas.config` can import it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kerasflow.schemas.base import Activation, Fraction, PositiveInt, Section, problems_error

Encoder = Literal["bag", "average", "simple_rnn", "lstm", "gru", "conv1d", "conv1d_gru"]
RECURRENT_ENCODERS = ("simple_rnn", "lstm", "gru")
CONV_ENCODERS = ("conv1d", "conv1d_gru")
Analyzer = Literal["word", "char", "char_wb"]
NGrams = Annotated[int, Field(ge=1, le=8)] | tuple[Annotated[int, Field(ge=1, le=8)], Annotated[int, Field(ge=1, le=8)]]
Standardize = Literal["lower_strip_html", "lower_and_strip_punctuation", "lower", "strip_punctuation", "none"]
_Layers = Annotated[int, Field(ge=1, le=8)]

# Tunable parameters of a text encoder, relative to its section:
# name -> (accepted parameter types, value type).
ENCODER_TUNABLE: dict[str, tuple[tuple[str, ...], Any]] = {
    "encoder": (("choice",), Encoder),
    "units": (("int", "choice"), PositiveInt),
    "layers": (("int", "choice"), _Layers),
    "embedding_dim": (("int", "choice"), PositiveInt),
    "bidirectional": (("boolean",), bool),
    "dropout": (("float", "choice"), Fraction),
    "recurrent_dropout": (("float", "choice"), Fraction),
    "filters": (("int", "choice"), PositiveInt),
    "kernel_size": (("int", "choice"), PositiveInt),
}
# Tunable names of the `text` family (`model.units`, `model.encoder`, ...).
TEXT_TUNABLE: dict[str, tuple[tuple[str, ...], Any]] = {
    **{f"model.{name}": rule for name, rule in ENCODER_TUNABLE.items()},
    "model.head_units": (("int", "choice"), PositiveInt),
}


class AnalyzerConfig(Section):
    """One analyzer: what a token is, its n-gram range and its vocabulary.

    Args:
        analyzer: `word` (default: whitespace-separated words, n-grams of
            words joined by a space), `char` (character n-grams over the
            whole text, whitespace runs collapsed) or `char_wb` (character
            n-grams inside word boundaries, each word padded with a space);
            the tokens of scikit-learn's analyzers of these names.
        ngrams: Largest n-gram size (`2`: sizes 1 and 2), or the range
            `[smallest, largest]` (`[2, 5]`). Default 1.
        max_tokens: Vocabulary size, padding and out-of-vocabulary tokens
            included. Default 10000.
        min_count: Training count a token needs to enter the vocabulary.
            Default 1.
    """

    analyzer: Analyzer = "word"
    ngrams: NGrams = 1
    max_tokens: Annotated[int, Field(ge=3, le=1_000_000)] = 10000
    min_count: PositiveInt = 1

    @property
    def ngram_range(self) -> tuple[int, int]:
        """`(smallest, largest)` n-gram size."""
        return (1, self.ngrams) if isinstance(self.ngrams, int) else self.ngrams

    @model_validator(mode="after")
    def _range_ordered(self) -> "AnalyzerConfig":
        low, high = self.ngram_range
        if low > high:
            raise problems_error([("ngrams", f"the range [{low}, {high}] is empty: write [smallest, largest]")])
        return self


class VectorizeConfig(AnalyzerConfig):
    """How raw text becomes model input (`TextVectorization`, fitted on training rows).

    Inherits `analyzer`, `ngrams`, `max_tokens` and `min_count` from
    `AnalyzerConfig`.

    Args:
        max_tokens: Vocabulary size, padding and out-of-vocabulary tokens
            included. Default 10000.
        output_mode: `int` (default) token-id sequences for embeddings;
            `multi_hot`, `count` or `tf_idf` bag-of-words vectors.
        sequence_length: Length every `int` sequence is padded or truncated
            to. Default 200.
        standardize: `lower_strip_html` (default: lowercase, drop HTML tags
            such as `<br />` and entities, split off punctuation),
            `lower_and_strip_punctuation`, `lower`, `strip_punctuation` or
            `none`.
        ngrams: Largest n-gram size (2 adds word pairs), or the range
            `[smallest, largest]`. Default 1.
        analyzer: `word` (default), `char` or `char_wb` (see
            `AnalyzerConfig`); characters need a bag `output_mode`.
        min_count: Training count a token needs to enter the vocabulary.
            Default 1.
        union: More analyzers (`AnalyzerConfig`: `analyzer`, `ngrams`,
            `max_tokens`, `min_count`), each with its own vocabulary, whose
            vectors are concatenated to this one's (bag modes only).
            Default none.
        sublinear_tf: Count a token `1 + log(count)` times (`count` and
            `tf_idf`). Default false.
        l2_normalize: Scale each text's vector to unit L2 norm, as
            scikit-learn's `TfidfVectorizer` does (bag modes). Default false.
    """

    output_mode: Literal["int", "multi_hot", "count", "tf_idf"] = "int"
    sequence_length: Annotated[int, Field(ge=1, le=10_000)] = 200
    standardize: Standardize = "lower_strip_html"
    union: list[AnalyzerConfig] = Field(default_factory=list)
    sublinear_tf: bool = False
    l2_normalize: bool = False

    @property
    def analyzers(self) -> list[AnalyzerConfig]:
        """This section's own analyzer, then those of `union`."""
        own = AnalyzerConfig(analyzer=self.analyzer, ngrams=self.ngrams, max_tokens=self.max_tokens,
                             min_count=self.min_count)
        return [own, *self.union]


class EmbeddingConfig(Section):
    """The token embedding of sequence encoders.

    Args:
        dim: Vector size. Default 64; with `pretrained`, defaults to (and
            must equal) the file's dimension.
        pretrained: A GloVe-format text file (`word v1 v2 ...` per line)
            whose vectors initialize the embedding; the vocabulary's
            coverage is logged as `text.embedding_coverage`. Default none.
        trainable: Train the embedding. Default true; set false to freeze
            pretrained vectors.
        mask_padding: Mask padding positions so recurrent layers and
            average pooling skip them. Default true.
    """

    dim: PositiveInt | None = None
    pretrained: str | None = None
    trainable: bool = True
    mask_padding: bool = True

    @property
    def size(self) -> int | None:
        """The configured dimension, or the default 64 without pretrained vectors."""
        return self.dim if self.dim is not None or self.pretrained else 64


class TextEncoderConfig(Section):
    """Vectorization, embedding and encoder of one text branch.

    Args:
        vectorize: See `VectorizeConfig`.
        embedding: See `EmbeddingConfig` (sequence encoders only).
        encoder: `bag` (dense layers on bag-of-words vectors), `average`
            (mean of token embeddings), `simple_rnn`, `lstm`, `gru`,
            `conv1d` (Conv1D + MaxPooling1D blocks, then global max
            pooling) or `conv1d_gru` (Conv1D + MaxPooling1D, then a GRU).
            Default `gru`.
        units: Units of recurrent layers, and of dense layers of `bag`.
            Default 32.
        layers: Stacked recurrent, convolution or (`bag`) dense layers;
            every recurrent layer but the last returns sequences. Default 1.
        bidirectional: Wrap recurrent layers in `Bidirectional`. Default false.
        dropout: Dropout of the embedded tokens (the input dropout of
            recurrent layers), of `bag`'s dense layers, and after the
            encoder. Default 0.
        recurrent_dropout: Dropout on recurrent state. Default 0.
        filters: Filters of each Conv1D layer. Default 64.
        kernel_size: Conv1D window in tokens. Default 5.
        pool_size: MaxPooling1D window between Conv1D layers. Default 2.
    """

    vectorize: VectorizeConfig = Field(default_factory=VectorizeConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    encoder: Encoder = "gru"
    units: PositiveInt = 32
    layers: _Layers = 1
    bidirectional: bool = False
    dropout: Fraction = 0.0
    recurrent_dropout: Fraction = 0.0
    filters: PositiveInt = 64
    kernel_size: Annotated[int, Field(ge=1, le=64)] = 5
    pool_size: Annotated[int, Field(ge=2, le=16)] = 2

    @model_validator(mode="after")
    def _encoder_fits_vectors(self) -> "TextEncoderConfig":
        problems = encoder_problems(self)
        if problems:
            raise problems_error(problems)
        return self


class TextModelConfig(TextEncoderConfig):
    """A text classifier or regressor on one text column.

    Inherits every `TextEncoderConfig` field (`vectorize`, `embedding`,
    `encoder`, `units`, `layers`, ...).

    Args:
        kind: `text`.
        column: The text column; the model takes it raw.
        head_units: Dense layers between the encoder and the output.
            Default none.
        activation: Activation of the head's layers and of `bag`'s dense
            layers. Default `relu`.
        wide: Also feed the bag vectors straight to the output layer, a
            linear model trained jointly with the network (wide & deep;
            `bag` encoder only). Default false.
    """

    kind: Literal["text"]
    column: Annotated[str, Field(min_length=1)]
    head_units: list[PositiveInt] = Field(default_factory=list)
    activation: Activation = "relu"
    wide: bool = False

    @model_validator(mode="after")
    def _wide_needs_bag(self) -> "TextModelConfig":
        if self.wide and self.encoder != "bag":
            raise problems_error([("wide", f"wide feeds bag vectors to the output layer: it needs encoder bag "
                                           f"(got {self.encoder})")])
        return self


def encoder_problems(cfg: TextEncoderConfig) -> list[tuple[str, str]]:
    """Rules between an encoder and its vectorization and embedding.

    Args:
        cfg: The encoder section.

    Returns:
        `(field, message)` pairs; empty when consistent.
    """
    mode, encoder = cfg.vectorize.output_mode, cfg.encoder
    if mode == "int" and (cfg.vectorize.union or cfg.vectorize.analyzer != "word"):
        return [("vectorize.analyzer", "character analyzers and a union of analyzers make bag-of-words vectors: "
                                       "use encoder bag with output_mode multi_hot, count or tf_idf")]
    if encoder == "bag" and mode == "int":
        return [("vectorize.output_mode", "encoder bag needs bag-of-words vectors: "
                                          "output_mode multi_hot, count or tf_idf (got int)")]
    if encoder != "bag" and mode != "int":
        return [("vectorize.output_mode", f"encoder {encoder} reads token sequences: output_mode must be int "
                                          f"(got {mode}); use encoder bag for {mode} vectors")]
    if encoder in CONV_ENCODERS:
        length = conv_output_length(cfg.vectorize.sequence_length, cfg.kernel_size, cfg.pool_size,
                                    cfg.layers if encoder == "conv1d" else 1, pool_last=encoder == "conv1d_gru")
        if length < 1:
            return [("vectorize.sequence_length", f"{cfg.vectorize.sequence_length} tokens are too few for "
                                                  f"{cfg.layers} Conv1D layer(s) of kernel_size {cfg.kernel_size} "
                                                  f"with pool_size {cfg.pool_size}")]
    return []


def conv_output_length(length: int, kernel: int, pool: int, blocks: int, pool_last: bool = False) -> int:
    """Sequence length left after Conv1D (valid padding) and MaxPooling1D blocks.

    Args:
        length: Input length.
        kernel: Conv1D kernel size.
        pool: Pooling window.
        blocks: Conv1D layers; each but the last is followed by pooling.
        pool_last: Pool after the last Conv1D too. Default false.

    Returns:
        The final length (below 1 means the input is too short).
    """
    for i in range(blocks):
        length = length - kernel + 1
        if length < 1:
            return length
        if i < blocks - 1 or pool_last:
            length //= pool
    return length
