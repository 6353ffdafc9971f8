"""Text preprocessing: standardization, vocabulary fitting and pretrained word vectors.

Plain functions (no Prefect, no MLflow). A vocabulary is fitted on the
training rows only and stored in a `TextSpec`, which travels in the feature
spec JSON, so the `TextVectorization` layer built from it is the same in
tuner trials, final training and serving. Tokens are produced by the same
registered TensorFlow standardizer that runs inside the model
(`kerasflow.features.text_layers`), so fitting and serving cannot disagree.
Pretrained vectors are read from GloVe-format text files (`word v1 v2 ...`
per line).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from kerasflow.features.tabular import FeatureError

PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
RESERVED_TOKENS = 2
KERAS_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


@dataclass
class TextSpec:
    """One text branch of a model and its training-split vocabulary.

    Args:
        name: Branch name (the text column for `text` models, the input
            name for `functional` ones).
        column: The raw text column the branch reads.
        segment: `all`, `first_sentence` or `rest` of each text.
        vocabulary: Tokens by descending training frequency, without the
            padding and out-of-vocabulary tokens.
        output_mode: `int`, `multi_hot`, `count` or `tf_idf`.
        sequence_length: Padded/truncated length of `int` sequences.
        standardize: Standardizer name (see `kerasflow.features.text_layers`).
        ngrams: Largest n-gram size (1 = single words).
        analyzer: `word`, `char` or `char_wb` (see
            `kerasflow.features.text_layers.analyze`).
        ngram_min: Smallest n-gram size. Default 1.
        union: Specs of further analyzers over the same text (as dicts),
            whose vectors the model concatenates to this one's.
        sublinear_tf: Count tokens `1 + log(count)` times.
        l2_normalize: Scale each text's vector to unit L2 norm.
        idf_weights: Inverse document frequencies (`tf_idf` only).
        documents: Number of training documents the vocabulary came from.
        embedding_coverage: Share of the vocabulary found in the pretrained
            vectors, or None without pretrained vectors.
    """

    name: str
    column: str
    vocabulary: list[str]
    output_mode: str = "int"
    sequence_length: int | None = 200
    standardize: str = "lower_strip_html"
    ngrams: int = 1
    segment: str = "all"
    idf_weights: list[float] = field(default_factory=list)
    documents: int = 0
    embedding_coverage: float | None = None
    analyzer: str = "word"
    ngram_min: int = 1
    union: list[dict[str, Any]] = field(default_factory=list)
    sublinear_tf: bool = False
    l2_normalize: bool = False

    @property
    def ngram_range(self) -> tuple[int, int]:
        """`(smallest, largest)` n-gram size."""
        return self.ngram_min, self.ngrams

    @property
    def analyzers(self) -> list["TextSpec"]:
        """This spec, then the specs of its `union`."""
        return [self, *(TextSpec.from_dict(item) for item in self.union)]

    @property
    def input_dim(self) -> int:
        """Rows of an embedding over this vocabulary (padding and OOV included)."""
        return len(self.vocabulary) + RESERVED_TOKENS

    def as_dict(self) -> dict[str, Any]:
        """Returns the spec as plain JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TextSpec":
        """Rebuilds a spec from `as_dict` output."""
        return cls(**data)


def text_series(frame: pd.DataFrame, column: str) -> pd.Series:
    """Returns a text column as strings, missing values as empty text.

    Args:
        frame: Raw rows.
        column: The text column.

    Returns:
        A string Series with the frame's index.

    Raises:
        FeatureError: The column is missing.
    """
    if column not in frame.columns:
        raise FeatureError(f"text column {column!r} is not in the data; available: {list(frame.columns)}")
    values = frame[column]
    return values.astype(object).where(values.notna(), "").map(str)


def standardize_texts(texts: Iterable[str], standardize: str = "lower_strip_html", segment: str = "all") -> Any:
    """Standardizes texts exactly as the model's vectorization layer does.

    Args:
        texts: Raw strings.
        standardize: Standardizer name. Default `lower_strip_html`.
        segment: `all` (default), `first_sentence` or `rest`.

    Returns:
        A 1-D `tf.string` tensor of standardized texts.
    """
    import tensorflow as tf

    from kerasflow.features.text_layers import segment_text, standardizer  # deferred: imports TensorFlow

    tensor = segment_text(tf.constant(list(texts), dtype=tf.string), segment)
    how = standardizer(standardize)
    if callable(how):
        return how(tensor)
    if how in ("lower", "lower_and_strip_punctuation"):
        tensor = tf.strings.lower(tensor)
    if how in ("strip_punctuation", "lower_and_strip_punctuation"):
        tensor = tf.strings.regex_replace(tensor, KERAS_PUNCTUATION, "")
    return tensor


def text_tokens(texts: Iterable[str], standardize: str = "lower_strip_html", segment: str = "all",
                ngrams: int = 1, analyzer: str = "word", ngram_min: int = 1) -> list[list[str]]:
    """Tokenizes texts exactly as `TextVectorization` does: standardize, split, n-grams.

    Args:
        texts: Raw strings.
        standardize: Standardizer name. Default `lower_strip_html`.
        segment: `all` (default), `first_sentence` or `rest`.
        ngrams: Largest n-gram size; 2 adds `word word` pairs. Default 1.
        analyzer: `word` (default), `char` or `char_wb`.
        ngram_min: Smallest n-gram size. Default 1.

    Returns:
        One token list per text.
    """
    from kerasflow.features.text_layers import analyze  # deferred: text_layers imports TensorFlow

    tokens = analyze(standardize_texts(texts, standardize, segment), analyzer, (ngram_min, ngrams))
    return [[t.decode("utf-8") for t in row] for row in tokens.to_list()]


def fit_vocabulary(
    documents: list[list[str]],
    *,
    max_tokens: int,
    min_count: int = 1,
) -> tuple[list[str], Counter]:
    """Picks the most frequent tokens of the training documents.

    Args:
        documents: Token lists of the training rows only.
        max_tokens: Vocabulary size including the padding and OOV tokens.
        min_count: Drop tokens seen fewer times. Default 1.

    Returns:
        `(vocabulary, document_frequency)`: tokens by descending count (ties
        alphabetical), and in how many documents each token occurs.
    """
    counts: Counter = Counter()
    document_frequency: Counter = Counter()
    for tokens in documents:
        counts.update(tokens)
        document_frequency.update(set(tokens))
    ranked = sorted((t for t, c in counts.items() if c >= min_count and t not in (PAD_TOKEN, OOV_TOKEN)),
                    key=lambda t: (-counts[t], t))
    return ranked[:max(max_tokens - RESERVED_TOKENS, 1)], document_frequency


def idf_weights(vocabulary: list[str], document_frequency: Counter, documents: int) -> list[float]:
    """Inverse document frequencies, with Keras's smoothing `log(1 + N / (1 + df))`.

    Args:
        vocabulary: The tokens.
        document_frequency: Documents containing each token.
        documents: Number of documents.

    Returns:
        One weight per vocabulary token.
    """
    return [math.log(1.0 + documents / (1.0 + document_frequency[t])) for t in vocabulary]


def fit_text_spec(
    sources: list[tuple[pd.Series, str]],
    *,
    name: str,
    column: str,
    segment: str = "all",
    max_tokens: int = 10000,
    output_mode: str = "int",
    sequence_length: int | None = 200,
    standardize: str = "lower_strip_html",
    ngrams: int = 1,
    min_count: int = 1,
    analyzer: str = "word",
    ngram_min: int = 1,
    union: list[dict[str, Any]] | None = None,
    sublinear_tf: bool = False,
    l2_normalize: bool = False,
) -> TextSpec:
    """Fits a text branch's vocabulary on training texts.

    Args:
        sources: `(training texts, segment)` pairs whose tokens make up the
            vocabulary: one pair for a branch of its own, one per branch for
            branches that share an encoder. Training rows only.
        name: Branch name.
        column: The column the branch reads.
        segment: The part of each text the branch reads. Default `all`.
        max_tokens: Vocabulary size, padding and OOV included. Default 10000.
        output_mode: `int` (default), `multi_hot`, `count` or `tf_idf`.
        sequence_length: Sequence length for `int`. Default 200.
        standardize: Standardizer name. Default `lower_strip_html`.
        ngrams: Largest n-gram size. Default 1.
        min_count: Minimum token count. Default 1.
        analyzer: `word` (default), `char` or `char_wb`.
        ngram_min: Smallest n-gram size. Default 1.
        union: Further analyzers, each `{analyzer, ngram_min, ngrams,
            max_tokens, min_count}`, fitted on the same texts with their
            own vocabularies. Default none.
        sublinear_tf: Count tokens `1 + log(count)` times. Default false.
        l2_normalize: Unit-norm vectors. Default false.

    Returns:
        The `TextSpec`.

    Raises:
        FeatureError: No tokens are left in the training texts.
    """
    documents: list[list[str]] = []
    for texts, part in sources:
        documents += text_tokens(texts, standardize, part, ngrams, analyzer, ngram_min)
    vocabulary, frequency = fit_vocabulary(documents, max_tokens=max_tokens, min_count=min_count)
    if not vocabulary:
        raise FeatureError(f"text column {column!r} has no {analyzer} tokens (seen at least {min_count} times) "
                           "in the training rows")
    shared = dict(name=name, column=column, segment=segment, output_mode=output_mode, standardize=standardize)
    more = [fit_text_spec(sources, **shared, **item).as_dict() for item in union or []]
    return TextSpec(
        analyzer=analyzer,
        ngram_min=ngram_min,
        union=more,
        sublinear_tf=sublinear_tf,
        l2_normalize=l2_normalize,
        name=name,
        column=column,
        vocabulary=vocabulary,
        output_mode=output_mode,
        sequence_length=sequence_length if output_mode == "int" else None,
        standardize=standardize,
        ngrams=ngrams,
        segment=segment,
        idf_weights=idf_weights(vocabulary, frequency, len(documents)) if output_mode == "tf_idf" else [],
        documents=len(documents),
    )


@functools.lru_cache(maxsize=4)
def _read_vectors(path: str, mtime: float) -> tuple[dict[str, int], np.ndarray]:
    words: dict[str, int] = {}
    rows: list[np.ndarray] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if len(parts) < 2:
                continue
            try:
                vector = np.asarray(parts[1:], dtype="float32")
            except ValueError:
                raise FeatureError(f"{path}:{number}: not a GloVe line (word then numbers)") from None
            if rows and vector.shape != rows[0].shape:
                raise FeatureError(f"{path}:{number}: {vector.size} numbers, expected {rows[0].size}")
            if parts[0] not in words:
                words[parts[0]] = len(rows)
                rows.append(vector)
    if not rows:
        raise FeatureError(f"pretrained vectors file {path} has no vectors")
    return words, np.stack(rows)


def load_word_vectors(path: str | Path) -> tuple[dict[str, int], np.ndarray]:
    """Reads a GloVe-format text file (`word v1 v2 ...` per line).

    Results are cached per path and modification time, so tuner trials
    read the file once.

    Args:
        path: The vectors file.

    Returns:
        `(index, matrix)`: row of each word, and a float32 matrix.

    Raises:
        FeatureError: The file is missing, empty or malformed.
    """
    file = Path(path)
    if not file.is_file():
        raise FeatureError(f"pretrained vectors file not found: {file.resolve()} (model embedding.pretrained)")
    return _read_vectors(str(file.resolve()), file.stat().st_mtime)


def vectors_dim(path: str | Path) -> int:
    """Returns the dimension of the vectors in a GloVe-format file."""
    return int(load_word_vectors(path)[1].shape[1])


def embedding_coverage(vocabulary: list[str], path: str | Path) -> float:
    """Returns the share of vocabulary tokens that have a pretrained vector.

    Args:
        vocabulary: Tokens without the padding and OOV tokens.
        path: GloVe-format vectors file.

    Returns:
        A fraction in [0, 1].
    """
    index, _ = load_word_vectors(path)
    return sum(t in index for t in vocabulary) / max(len(vocabulary), 1)


def embedding_matrix(vocabulary: list[str], path: str | Path, seed: int = 42) -> np.ndarray:
    """Builds the initial weights of an embedding over a vocabulary.

    Row 0 (padding) is zero; tokens with a pretrained vector get it; the OOV
    row and uncovered tokens get small random vectors with the pretrained
    vectors' spread.

    Args:
        vocabulary: Tokens without the padding and OOV tokens.
        path: GloVe-format vectors file.
        seed: Seed of the random rows. Default 42.

    Returns:
        A float32 matrix of shape `(len(vocabulary) + 2, dim)`.
    """
    index, vectors = load_word_vectors(path)
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, float(vectors.std()), size=(len(vocabulary) + RESERVED_TOKENS, vectors.shape[1]))
    matrix[0] = 0.0
    for row, token in enumerate(vocabulary, RESERVED_TOKENS):
        if token in index:
            matrix[row] = vectors[index[token]]
    return matrix.astype("float32")


def fit_word_vectors(texts: Iterable[str], *, dim: int = 50, words: int = 2000, window: int = 4,
                     seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Learns small word vectors from a co-occurrence matrix with truncated SVD.

    Counts how often the `words` most frequent tokens appear within
    `window` tokens of each other, weights the counts by positive pointwise
    mutual information and keeps the top `dim` SVD components, normalized
    to unit length. A quick, offline stand-in for GloVe.

    Args:
        texts: Raw training texts.
        dim: Vector size. Default 50.
        words: Vocabulary size. Default 2000.
        window: Context window on each side. Default 4.
        seed: SVD seed. Default 0.

    Returns:
        `(words, vectors)` in descending frequency order.
    """
    from scipy import sparse
    from sklearn.decomposition import TruncatedSVD

    docs = text_tokens(texts)
    vocabulary, _ = fit_vocabulary(docs, max_tokens=words + RESERVED_TOKENS)
    index = {w: i for i, w in enumerate(vocabulary)}
    rows, cols = [], []
    for doc in docs:
        ids = [index.get(t, -1) for t in doc]
        for i, a in enumerate(ids):
            if a < 0:
                continue
            for b in ids[max(0, i - window):i]:
                if b >= 0:
                    rows += [a, b]
                    cols += [b, a]
    n = len(vocabulary)
    counts = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    total = counts.sum()
    row_sum = np.asarray(counts.sum(axis=1)).ravel()
    coo = counts.tocoo()
    pmi = np.log(coo.data * total / (row_sum[coo.row] * row_sum[coo.col]))
    ppmi = sparse.csr_matrix((np.maximum(pmi, 0.0), (coo.row, coo.col)), shape=(n, n))
    vectors = TruncatedSVD(n_components=dim, random_state=seed).fit_transform(ppmi)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-8)
    return vocabulary, vectors.astype("float32")


def save_word_vectors(words: list[str], vectors: np.ndarray, path: str | Path, digits: int = 4) -> Path:
    """Writes vectors in GloVe text format.

    Args:
        words: One word per row.
        vectors: The matrix.
        path: Output file.
        digits: Decimals kept. Default 4.

    Returns:
        The path written.
    """
    lines = (f"{w} " + " ".join(f"{v:.{digits}f}" for v in row) for w, row in zip(words, vectors))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)
