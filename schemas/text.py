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
every other encoder reads `int` token sequences through an embedding.

This module imports only `kerasflow.schemas.base`, so `kerasflow.schemas.config` can import it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kerasflow.schemas.base import Activation, Fraction, PositiveInt, Section, problems_error

Encoder = Literal["bag", "average", "simple_rnn", "lstm", "gru", "conv1d", "conv1d_gru"]
RECURRENT_ENCODERS = ("simple_rnn", "lstm", "gru")
CONV_ENCODERS = ("conv1d", "conv1d_gru")
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


class VectorizeConfig(Section):
    """How raw text becomes model input (`TextVectorization`, fitted on training rows).

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
        ngrams: Largest n-gram size; 2 adds word pairs. Default 1.
        min_count: Training count a token needs to enter the vocabulary.
            Default 1.
    """

    max_tokens: Annotated[int, Field(ge=3, le=1_000_000)] = 10000
    output_mode: Literal["int", "multi_hot", "count", "tf_idf"] = "int"
    sequence_length: Annotated[int, Field(ge=1, le=10_000)] = 200
    standardize: Standardize = "lower_strip_html"
    ngrams: Annotated[int, Field(ge=1, le=5)] = 1
    min_count: PositiveInt = 1


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
    """

    kind: Literal["text"]
    column: Annotated[str, Field(min_length=1)]
    head_units: list[PositiveInt] = Field(default_factory=list)
    activation: Activation = "relu"


def encoder_problems(cfg: TextEncoderConfig) -> list[tuple[str, str]]:
    """Rules between an encoder and its vectorization and embedding.

    Args:
        cfg: The encoder section.

    Returns:
        `(field, message)` pairs; empty when consistent.
    """
    mode, encoder = cfg.vectorize.output_mode, cfg.encoder
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
