"""Fixed preprocessing run once: a model split into its untrained encoder and the trained layers after it.

The tabular encoding (`features.inputs.build_input_layers`: imputation,
normalization, one-hot lookups, ending in the `ENCODED_FEATURES` layer) and
the text vectorization of bag and sequence encoders (`models.text`: the
`TextVectorization` layers, their `TermWeights` and the union of analyzers,
every layer named `VECTORIZED_PREFIX...`) have no trained weights. Encoding
the rows once and fitting the layers after them trains the same weights as
fitting the whole model, without re-encoding every batch of every epoch:
twice as fast on a million table rows, and the character n-grams of a text
union are counted once, not once per epoch (`benchmarks/text_encode_once.py`).
The model keeps both parts, sharing their layers, so what is saved and
served still takes raw rows.

Wide encodings (bag-of-words vectors) are kept as sparse row matrices, so
a text set's TF-IDF vectors fit in memory; a batch is densified as it is
fed, so the trained layers see the very values the whole model computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kerasflow.features.tabular import ENCODED_FEATURES, VECTORIZED_PREFIX, as_model_inputs

SPARSE_WIDTH = 1024  # an encoded input at least this wide is kept as a sparse row matrix
CHUNK_VALUES = 2**22  # encoded values per encoding step (16 MB of float32)
CHUNK_ROWS = 8192  # most rows per encoding step


@dataclass(frozen=True)
class Split:
    """A model split at its fixed encoding (`split_encoder`).

    Args:
        encoder: The model from the raw inputs to the encoded tensors.
        core: The layers after them, as a model compiled like the whole one,
            sharing its layers; one input per encoded tensor.
        shapes: Each encoded tensor's shape without the batch dimension.
        dtypes: Each encoded tensor's dtype.
    """

    encoder: Any
    core: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies the encoding: the encoder's layers, the shapes and dtypes it gives."""
        return tuple(layer.name for layer in self.encoder.layers), self.shapes, self.dtypes


def split_encoder(model: Any) -> Split | None:
    """Splits a model into its fixed feature encoder and the trained layers after it.

    The fixed layers are the `ENCODED_FEATURES` layer and the text
    vectorization layers (named `VECTORIZED_PREFIX...`); the encoder ends at
    those of their outputs that no other fixed layer reads (a union's
    concatenation, not the analyzers it joins).

    Args:
        model: A compiled `keras.Model`.

    Returns:
        The `Split`, or None when the model has no fixed layers, a layer
        after them also reads raw inputs (images), the encoder has trained
        weights, a fixed layer is shared by several inputs, the model is not
        compiled, or it has several outputs.
    """
    import keras

    fronts = _fronts(model)
    compile_config = model.get_compile_config() if model.compiled else None
    if not fronts or len(model.outputs) != 1 or compile_config is None:
        return None
    with model.distribute_strategy.scope():  # the parts train on the replicas the model was built for
        try:
            encoder = keras.Model(model.inputs, fronts if len(fronts) > 1 else fronts[0])
            rest = keras.Model(fronts if len(fronts) > 1 else fronts[0], model.outputs[0])
        except ValueError:  # the layers after the encoder also read raw inputs
            return None
        if encoder.trainable_weights:
            return None
        shapes, dtypes = _encoded_specs(encoder)
        inputs = [keras.Input(shape=s, dtype=d) for s, d in zip(shapes, dtypes)]
        # the same layers traced again on inputs of the encoded shapes (a bag's symbolic shape keeps the
        # raw input's axis of 1; the tensors have none)
        core = keras.models.clone_model(rest, input_tensors=inputs if len(inputs) > 1 else inputs[0],
                                        clone_function=lambda layer: layer)
        core.compile_from_config(compile_config)
    return Split(encoder=encoder, core=core, shapes=shapes, dtypes=dtypes)


def encode_rows(split: Split, x: dict[str, Any]) -> Any:
    """Runs a model's fixed encoder (`split_encoder`) over named raw inputs, in bounded batches.

    Args:
        split: The split model.
        x: Named inputs from `frame_to_inputs` (or `as_model_inputs`).

    Returns:
        The core's inputs: one encoded matrix per encoded tensor (a list when
        there are several), a `scipy.sparse` CSR matrix when it is at least
        `SPARSE_WIDTH` wide and the model trains on one device (its nonzero
        entries are found inside the TensorFlow graph, batch by batch), a
        NumPy array otherwise.
    """
    inputs = as_model_inputs(x)
    rows = len(next(iter(inputs.values())))
    step = encoded_batch_size(split)
    sparse = [len(s) == 1 and s[0] >= SPARSE_WIDTH and d.startswith("float") and _one_device(split.core)
              for s, d in zip(split.shapes, split.dtypes)]
    encode = _encode_function(split.encoder, sparse)
    chunks: list[list[Any]] = [[] for _ in split.shapes]
    for start in range(0, rows, step):
        for i, part in enumerate(encode({k: _tensor(v[start:start + step]) for k, v in inputs.items()})):
            chunks[i].append(_entries(part, start) if sparse[i] else np.asarray(part))
    encoded = [_stack(parts, split.shapes[i], split.dtypes[i], sparse[i], rows) for i, parts in enumerate(chunks)]
    return encoded if len(encoded) > 1 else encoded[0]


def _encode_function(encoder: Any, sparse: list[bool]) -> Any:
    """The encoder as a graph function giving, per encoded tensor, the array or its (row, column, value) entries."""
    import tensorflow as tf  # deferred: TensorFlow loads with the model

    def encode(batch: dict[str, Any]) -> list[Any]:
        out = encoder(batch, training=False)
        parts = list(out) if isinstance(out, (list, tuple)) else [out]
        result = []
        for part, wide in zip(parts, sparse):
            if wide:
                where = tf.where(tf.not_equal(part, 0))
                result.append((where[:, 0], where[:, 1], tf.gather_nd(part, where)))
            else:
                result.append(part)
        return result

    signature = [{t.name: tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=t.name) for t in encoder.inputs}]
    return tf.function(encode, input_signature=signature)  # traced once: the vocabulary tables are built once


def encoded_batch_size(split: Split) -> int:
    """Rows per step of encoding, or of scoring the core on encoded rows: up to `CHUNK_ROWS`, about `CHUNK_VALUES` values.

    Args:
        split: The split model.

    Returns:
        The batch size, at least 32.
    """
    width = sum(int(np.prod(s)) for s in split.shapes) or 1
    return int(max(32, min(CHUNK_ROWS, CHUNK_VALUES // width)))


def _fronts(model: Any) -> list[Any]:
    """The outputs of the model's fixed layers that no other fixed layer reads, in layer order."""
    fixed = [layer for layer in model.layers
             if layer.name == ENCODED_FEATURES or layer.name.startswith(VECTORIZED_PREFIX)]
    try:
        outputs = [layer.output for layer in fixed]
        read = {id(t) for layer in fixed for t in _flat(layer.input)}
    except (ValueError, AttributeError):  # a layer called on several inputs (a shared text encoder)
        return []
    return [t for t in outputs if id(t) not in read]


def _flat(value: Any) -> list[Any]:
    return [v for item in value for v in _flat(item)] if isinstance(value, (list, tuple)) else [value]


def _encoded_specs(encoder: Any) -> tuple[tuple[tuple[int, ...], ...], tuple[str, ...]]:
    """The shape (without the batch axis) and dtype of each encoded tensor, from encoding one empty row."""
    row = {}
    for tensor in encoder.inputs:
        shape = (1, *(d or 1 for d in tensor.shape[1:]))
        row[tensor.name] = np.full(shape, "", dtype=object) if tensor.dtype == "string" else np.zeros(
            shape, dtype=tensor.dtype)
    out = encoder.predict_on_batch(as_model_inputs(row))
    parts = [np.asarray(p) for p in (out if isinstance(out, (list, tuple)) else [out])]
    return tuple(tuple(int(d) for d in p.shape[1:]) for p in parts), tuple(str(p.dtype) for p in parts)


def _one_device(model: Any) -> bool:
    return model.distribute_strategy.num_replicas_in_sync == 1


def _tensor(value: Any) -> Any:
    import tensorflow as tf  # deferred: TensorFlow loads with the model

    return tf.convert_to_tensor(value)


def _entries(part: tuple[Any, Any, Any], start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch's (row, column, value) entries, its rows counted from `start`."""
    rows, columns, values = (np.asarray(p) for p in part)
    return rows + start, columns, values


def _stack(parts: list[Any], shape: tuple[int, ...], dtype: str, sparse: bool, rows: int) -> Any:
    """Joins the batches of one encoded tensor: an array, or a CSR matrix of `rows` rows."""
    if not sparse:
        return np.concatenate(parts) if parts else np.zeros((0, *shape), dtype=dtype)
    import scipy.sparse  # deferred: SciPy loads only with a wide encoding

    if not parts:
        return scipy.sparse.csr_matrix((rows, *shape), dtype=dtype)
    at, columns, values = (np.concatenate(p) for p in zip(*parts))
    return scipy.sparse.csr_matrix((values.astype(dtype), (at, columns)), shape=(rows, *shape))
