"""The serving fast path: a compiled inference function for small batches.

`model.predict` builds a `tf.data` pipeline and runs a step function for
every call, which costs a 10-row request tens of milliseconds of machinery
for microseconds of math. `CompiledInference` wraps `model(x,
training=False)` in a `tf.function` whose input signature is fixed from
the model's named inputs (rows first, any number of rows), so it is traced
once, at load, by a one-row warm-up call, and every later call of any size
runs the same graph. `Predictor` uses it for batches of up to
`fast_rows(...)` rows and `model.predict` beyond.

The outputs are those of `model.predict` (the same layers in inference
mode, in one batch instead of several), within float tolerance.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from kerasflow.features.tabular import inference_batch_size

LOGGER = logging.getLogger("kerasflow.serving")

# Largest batch the compiled function scores in one call. Up to here a request is one batch for
# `model.predict` too (`inference_batch_size` is at least this for table rows), so the fast path
# holds the same activations in memory; what it saves, the per-call `tf.data` and step-function set-up
# (tens of ms), is most of the cost of a small request and a vanishing share of a large one, whose
# rows `model.predict` splits into bounded batches.
FAST_ROWS = 1024


def fast_rows(inputs: dict[str, Any]) -> int:
    """The most rows the compiled function scores at once, for these inputs.

    Args:
        inputs: Named model inputs (arrays or tensors, rows first).

    Returns:
        `FAST_ROWS`, or fewer for inputs with many values per row (images),
        where `model.predict` would use smaller batches
        (`kerasflow.features.tabular.inference_batch_size`).
    """
    return min(FAST_ROWS, inference_batch_size(inputs))


class CompiledInference:
    """`model(inputs, training=False)` compiled once for the model's named inputs.

    Args:
        model: A Keras model with named inputs (`model.inputs`), called with
            a dict of them, as kerasflow's models are.

    Raises:
        ValueError: The model does not declare its inputs (a subclassed
            model that was never built).

    Example:

    ```python
    compiled = CompiledInference(model)  # traced and warmed up here
    compiled({"numeric": np.zeros((10, 30), "float32")})  # -> the model's outputs, as NumPy
    ```
    """

    def __init__(self, model: Any) -> None:
        import tensorflow as tf  # deferred: TensorFlow loads only when a model is served

        if not getattr(model, "inputs", None):
            raise ValueError("the model does not declare its inputs")
        self.specs = {t.name: tf.TensorSpec((None, *t.shape[1:]), tf.as_dtype(t.dtype), name=t.name)
                      for t in model.inputs}
        self.function = tf.function(lambda inputs: model(inputs, training=False), input_signature=[self.specs])
        self.warm_up()

    @property
    def traces(self) -> int:
        """How many times the function was traced (1 after the warm-up, and it stays 1)."""
        return self.function.experimental_get_tracing_count()

    def accepts(self, inputs: dict[str, Any]) -> bool:
        """True when `inputs` are the model's named inputs and few enough rows for one call."""
        if set(inputs) != set(self.specs):
            return False
        rows = len(next(iter(inputs.values())))
        return 0 < rows <= fast_rows(inputs)

    def __call__(self, inputs: dict[str, Any]) -> Any:
        """Runs the model on named inputs.

        Args:
            inputs: Named arrays or tensors (`as_model_inputs`), one per model input.

        Returns:
            The model's outputs as NumPy arrays, in the model's output
            structure (an array, or a dict of arrays by output name).
        """
        import tensorflow as tf

        tensors = {name: value if isinstance(value, tf.Tensor) or spec.dtype == tf.string
                   else np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
                   for name, spec in self.specs.items() for value in [inputs[name]]}
        return tf.nest.map_structure(lambda t: t.numpy(), self.function(tensors))

    def warm_up(self) -> None:
        """Traces the function with one neutral row (zeros, empty strings), so the first request is not slow."""
        import tensorflow as tf

        row = {name: tf.fill([1, *spec.shape[1:]], tf.constant("" if spec.dtype == tf.string else 0, spec.dtype))
               for name, spec in self.specs.items()}
        self.function(row)


def compile_inference(model: Any) -> CompiledInference | None:
    """Compiles and warms up a model's fast path, or returns None (with a warning) if it cannot be traced.

    Args:
        model: The Keras model.

    Returns:
        The `CompiledInference`, or None: the model is then served by
        `model.predict` alone, as before, with the reason logged.
    """
    try:
        return CompiledInference(model)
    except Exception as exc:  # any tracing failure: the model still serves, through `model.predict`
        LOGGER.warning("serving without the compiled fast path (model.predict for every request): %s: %s",
                       type(exc).__name__, exc)
        return None
