"""TabM's parameter-efficient ensemble layers, as Keras objects that ship inside the model.

From Gorishniy et al., "TabM: Advancing Tabular Deep Learning with
Parameter-Efficient Ensembling" (ICLR 2025): one MLP holds k implicit
members that share their weight matrices (BatchEnsemble) and differ by cheap
per-member scaling vectors and biases.

Shapes: `EnsembleView` turns `(batch, d)` into `(batch, k, d)`; every other
layer keeps the member axis; `MeanOverMembers` removes it.

Training and prediction (the design the families build on, see
`kerasflow.models.tabm_backbone`):
- The network is built once. Its member output `(batch, k, out)` (logits for
  classification) is the output of the *training* model, compiled with
  `MemberMeanLoss(base_loss)`: every member is scored against the label and
  the k losses are averaged (the paper: the mean loss, not the loss of the
  mean prediction, keeps members diverse).
- The *prediction* model shares every layer and ends with
  `MeanOverMembers(activation)`: each member's output goes through the
  activation (softmax / sigmoid / none) and the results are averaged, so
  classification averages probabilities. It returns `(batch, out)` like any
  other kerasflow model: it is the one evaluated, saved, served and batch
  predicted, so nothing downstream knows about members.
- `TabMModel` is both in one functional model, as the `tabm` family builds
  it: its output is the `MeanOverMembers` prediction, while its training
  step scores the members (the mean of their losses, with the compiled
  loss). The pipeline trains, saves and serves that one model unchanged.

The layers live here, under `features`, rather than next to the TabM family
in `models`, because loading a saved model (serving, ensembles, streaming)
must register them, and those loaders may import `features` but not
`models`. Imports nothing from kerasflow beyond Keras; importers defer importing it (it imports Keras).
"""

from __future__ import annotations

import keras

SCALING_INITS = ("ones", "normal", "random-signs")


def _scaling_initializer(distribution: str, chunks=None, seed=None):
    """Initializer of a `(k, d)` scaling matrix: ones, N(0, 1) or random ±1 signs.

    Args:
        distribution: One of `SCALING_INITS`.
        chunks: Optional sizes that sum to `d`; every chunk of a member gets one
            shared random value (TabM draws one scalar per input feature).
        seed: Optional seed of the random draw.

    Returns:
        A callable `(shape, dtype) -> tensor`.

    Raises:
        ValueError: If `distribution` is unknown.
    """
    if distribution not in SCALING_INITS:
        raise ValueError(f"scaling init must be one of {SCALING_INITS}, got {distribution!r}")

    def initialize(shape, dtype=None):
        if distribution == "ones":
            return keras.ops.ones(shape, dtype=dtype)
        draw_shape = shape if chunks is None else (shape[0], len(chunks))
        values = keras.random.normal(draw_shape, dtype=dtype, seed=seed)
        if distribution == "random-signs":
            values = keras.ops.where(values >= 0, 1.0, -1.0)
        return values if chunks is None else keras.ops.repeat(values, chunks, axis=1)

    return initialize


def _uniform(bound: float, seed=None):
    """Initializer drawing from U(-bound, bound), PyTorch's default for Linear layers."""
    return keras.initializers.RandomUniform(-bound, bound, seed=seed)


def _offset(seed, offset: int):
    """A distinct seed per weight of a layer (None stays None: Keras' global seed generator)."""
    return None if seed is None else int(seed) + offset


@keras.saving.register_keras_serializable(package="kerasflow")
class EnsembleView(keras.layers.Layer):
    """Gives every member the same input: `(batch, d) -> (batch, k, d)`.

    An input that already has the member axis `(batch, k, d)` passes unchanged.

    Args:
        k: The number of members.
    """

    def __init__(self, k, **kwargs):
        super().__init__(**kwargs)
        self.k = int(k)

    def call(self, inputs):
        if len(inputs.shape) == 3:
            if inputs.shape[1] != self.k:
                raise ValueError(f"EnsembleView expects (batch, d) or (batch, {self.k}, d), got {inputs.shape}")
            return inputs
        expanded = keras.ops.expand_dims(inputs, 1)
        return keras.ops.repeat(expanded, self.k, axis=1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) if len(input_shape) == 3 else (input_shape[0], self.k, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package="kerasflow")
class LinearBatchEnsemble(keras.layers.Layer):
    """BatchEnsemble linear layer: `y_i = ((x_i * r_i) @ W) * s_i + b_i` for member i.

    `W` is shared; `r` (input scaling), `s` (output scaling) and the bias
    are per member. As in the paper, `W` and the bias draw from
    U(±1/sqrt(d_in)) and all members start with the same bias. TabM's own
    initialization randomizes only the first layer's `r` (`r_init="random-signs"`,
    or `"normal"` after numeric embeddings) and sets every other `r` and `s` to
    ones, so members differ only at the very first layer when training starts.

    Args:
        units: Output size.
        k: The number of members.
        r_init: Initialization of `r`: `ones`, `normal` or `random-signs`.
        s_init: Initialization of `s`.
        r_chunks: Optional chunk sizes for `r`, one random value per chunk (per feature).
        use_bias: Add the per-member bias.
        seed: Optional seed of the initializers (concurrent trainings stay reproducible).
    """

    def __init__(self, units, k, r_init="ones", s_init="ones", r_chunks=None, use_bias=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.units, self.k, self.use_bias = int(units), int(k), bool(use_bias)
        self.r_init, self.s_init = r_init, s_init
        self.r_chunks = None if r_chunks is None else [int(size) for size in r_chunks]
        _scaling_initializer(r_init), _scaling_initializer(s_init)  # validates the names early

    def build(self, input_shape):
        d_in = int(input_shape[-1])
        if self.r_chunks is not None and sum(self.r_chunks) != d_in:
            raise ValueError(f"r_chunks sum to {sum(self.r_chunks)}, the input has {d_in} columns")
        bound = d_in**-0.5
        self.kernel = self.add_weight(name="kernel", shape=(d_in, self.units), initializer=_uniform(bound, self.seed))
        r_init = _scaling_initializer(self.r_init, self.r_chunks, _offset(self.seed, 1))
        self.r = self.add_weight(name="r", shape=(self.k, d_in), initializer=r_init)
        s_init = _scaling_initializer(self.s_init, seed=_offset(self.seed, 2))
        self.s = self.add_weight(name="s", shape=(self.k, self.units), initializer=s_init)
        if self.use_bias:
            shared = keras.ops.convert_to_tensor(_uniform(bound, _offset(self.seed, 3))((self.units,)))
            self.bias = self.add_weight(
                name="bias",
                shape=(self.k, self.units),
                initializer=lambda shape, dtype=None: keras.ops.cast(keras.ops.broadcast_to(shared, shape), dtype),
            )

    def call(self, inputs):
        outputs = keras.ops.matmul(inputs * self.r, self.kernel) * self.s
        return outputs + self.bias if self.use_bias else outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "k": self.k,
            "r_init": self.r_init,
            "s_init": self.s_init,
            "r_chunks": self.r_chunks,
            "use_bias": self.use_bias,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="kerasflow")
class LinearEnsemble(keras.layers.Layer):
    """k fully separate linear layers, one per member: `(batch, k, d) -> (batch, k, units)`.

    TabM's prediction head. Weights and biases draw from U(±1/sqrt(d)).

    Args:
        units: Output size per member.
        k: The number of members.
        seed: Optional seed of the initializers.
    """

    def __init__(self, units, k, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.k, self.seed = int(units), int(k), seed

    def build(self, input_shape):
        d_in = int(input_shape[-1])
        bound = d_in**-0.5
        self.kernel = self.add_weight(name="kernel", shape=(self.k, d_in, self.units), initializer=_uniform(bound, self.seed))
        self.bias = self.add_weight(name="bias", shape=(self.k, self.units), initializer=_uniform(bound, _offset(self.seed, 1)))

    def call(self, inputs):
        return keras.ops.einsum("bki,kio->bko", inputs, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "k": self.k, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kerasflow")
class MeanOverMembers(keras.layers.Layer):
    """Averages the members' predictions: `(batch, k, out) -> (batch, out)`.

    Args:
        activation: Applied to each member before averaging (`softmax` or
            `sigmoid` averages probabilities, not logits), or None.
    """

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self.function = keras.activations.get(activation)

    def call(self, inputs):
        return keras.ops.mean(self.function(inputs), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@keras.saving.register_keras_serializable(package="kerasflow")
class MemberMeanLoss(keras.losses.Loss):
    """Scores each member's prediction against the label and averages over members.

    `y_pred` is `(batch, k, ...)`, `y_true` has no member axis. The members
    are folded into the batch, the base loss is taken per row, and the k
    values of each example are averaged, so sample weights and the
    reduction apply per example as usual.

    Args:
        loss: The base loss: a Keras loss name, config or `Loss` instance
            (e.g. `SparseCategoricalCrossentropy(from_logits=True)`).
    """

    def __init__(self, loss="mean_squared_error", name="member_mean_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.base = keras.losses.get(loss)

    def call(self, y_true, y_pred):
        k = int(y_pred.shape[1])
        folded = keras.ops.reshape(y_pred, (-1, *y_pred.shape[2:]))
        repeated = keras.ops.repeat(y_true, k, axis=0)
        if isinstance(self.base, keras.losses.Loss):
            per_row = self.base.call(repeated, folded)
        else:
            per_row = self.base(repeated, folded)
        per_row = keras.ops.reshape(per_row, (-1, k, *per_row.shape[1:]))
        return keras.ops.mean(per_row, axis=1)

    def get_config(self):
        return {**super().get_config(), "loss": keras.losses.serialize(self.base)}


@keras.saving.register_keras_serializable(package="kerasflow")
class TabMModel(keras.Model):
    """A functional TabM model: predicts with the members' mean, trains on the mean of their losses.

    Built like any functional model, `TabMModel(inputs, outputs)`, whose
    output is a `MeanOverMembers` layer on the `(batch, k, out)` member
    outputs. At inference (`predict`, `evaluate`, validation, serving) it
    returns that `(batch, out)` mean, so it is evaluated, saved, ensembled
    and served like any other kerasflow model. In a training step, `call`
    returns the members' activated outputs instead: `compute_loss` scores
    every member against the label with the compiled loss (the mean of the
    k losses, as the TabM paper trains) and `compute_metrics` reports the
    metrics of the members' mean. `val_loss` is the loss of the mean
    prediction, the model that is kept.

    Piecewise-linear bins, like every fitted statistic of the inputs, come
    from the feature spec fitted on the training rows
    (`kerasflow.features.inputs`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mean = next((layer for layer in self.layers if isinstance(layer, MeanOverMembers)), None)
        if mean is None:
            raise ValueError("a TabMModel's output is a MeanOverMembers layer on the members' outputs")
        members = keras.Model(self.inputs, mean.input, name=f"{self.name}_members")
        # held in closures, not attributes, so saving does not walk the shared layers twice
        self.members = lambda: members
        self.average = lambda: mean

    def call(self, inputs, training=None, mask=None):
        if training:
            return self.average().function(self.members()(inputs, training=True))
        return super().call(inputs, training=training, mask=mask)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None or len(y_pred.shape) != 3:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        k = int(y_pred.shape[1])  # fold the members into the batch: the compiled loss averages all k * batch rows
        folded = keras.ops.reshape(y_pred, (-1, *y_pred.shape[2:]))
        labels = keras.ops.repeat(y, k, axis=0)
        weights = None if sample_weight is None else keras.ops.repeat(sample_weight, k, axis=0)
        return super().compute_loss(x, labels, folded, weights, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if len(y_pred.shape) == 3:  # members' activated outputs: report the metrics of their mean
            y_pred = keras.ops.mean(y_pred, axis=1)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)
