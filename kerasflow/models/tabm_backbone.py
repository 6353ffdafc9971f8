"""The TabM backbone and its two models: one that trains the members, one that predicts with their mean.

TabM (Gorishniy et al., ICLR 2025) is an MLP of `depth` blocks (BatchEnsemble
linear, ReLU, dropout) shared by k implicit members, with a separate linear
head per member. Its paper defaults: k=32, width 512, depth 3 (2 with numeric
embeddings), dropout 0.1, AdamW(learning rate 2e-3, weight decay 3e-4).

How a family uses it (the layers and the loss are in
`kerasflow.features.tabm_layers`, where model loaders can register them):

    x = ...                                        # (batch, d) encoded inputs
    members = tabm_head(tabm_body(x, k=32), units, k=32)   # (batch, k, units), logits
    train_model, predict_model = tabm_models(inputs, members, activation)
    train_model.compile(tabm_optimizer(), loss=member_loss(loss))   # mean of the k members' losses
    train_model.fit(...)                           # early stopping on val_loss works as usual
    predict_model.compile(loss=loss, metrics=metrics)  # the (batch, units) averaged prediction
    predict_model.evaluate(...); predict_model.save("model.keras")

The `tabm` family (`kerasflow.models.tabm`) builds one
`kerasflow.features.tabm_layers.TabMModel` instead of the pair, so the
pipeline trains and saves the same object. Both models share every layer, so training one trains the other. The
prediction model is the one kerasflow evaluates, saves, serves and batch
predicts: it returns `(batch, units)` probabilities (softmax/sigmoid of each
member, then averaged) or values, like any other family's model.
"""

from __future__ import annotations

from typing import Any


def tabm_body(inputs: Any, k: int = 32, width: int = 512, depth: int = 3, dropout: float = 0.1,
              r_init: str = "random-signs", r_chunks: list[int] | None = None, seed: int | None = None) -> Any:
    """Builds the TabM backbone on a `(batch, d)` tensor: `(batch, k, width)` member features.

    TabM's initialization: the first layer's input scaling `r` is random
    (`random-signs` on plain inputs, `normal` after numeric embeddings, one
    value per feature with `r_chunks`), every other scaling starts at ones.

    Args:
        inputs: A `(batch, d)` Keras tensor (flattened embeddings included).
        k: The number of members.
        width: Units of every block.
        depth: The number of blocks.
        dropout: Dropout rate after every block.
        r_init: Initialization of the first layer's `r`: `random-signs`, `normal` or `ones`.
        r_chunks: Optional per-feature widths summing to `d` (e.g. `[d_embedding] * n_features`).
        seed: Optional base seed of the initializers.

    Returns:
        The `(batch, k, width)` Keras tensor.
    """
    import keras  # deferred: Keras loads TensorFlow

    from kerasflow.features.tabm_layers import EnsembleView, LinearBatchEnsemble  # deferred: imports Keras

    x = EnsembleView(k, name="ensemble_view")(inputs)
    for block in range(depth):
        first = block == 0
        x = LinearBatchEnsemble(
            width, k, r_init=r_init if first else "ones", r_chunks=r_chunks if first else None,
            seed=None if seed is None else seed + 10 * block, name=f"tabm_linear_{block}",
        )(x)
        x = keras.layers.ReLU(name=f"tabm_relu_{block}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, seed=None if seed is None else seed + 10 * block + 5,
                                     name=f"tabm_dropout_{block}")(x)
    return x


def tabm_head(members: Any, units: int, seed: int | None = None) -> Any:
    """The per-member linear heads: `(batch, k, width) -> (batch, k, units)` (logits for classification).

    Args:
        members: The backbone's output.
        units: Output size.
        seed: Optional seed of the initializers.

    Returns:
        The `(batch, k, units)` Keras tensor.
    """
    from kerasflow.features.tabm_layers import LinearEnsemble  # deferred: imports Keras

    return LinearEnsemble(units, int(members.shape[1]), seed=seed, name="tabm_head")(members)


def tabm_models(inputs: Any, member_outputs: Any, activation: str | None = None,
                name: str = "kerasflow") -> tuple[Any, Any]:
    """The training model (members' outputs) and the prediction model (their mean), sharing every layer.

    Args:
        inputs: The model inputs (a tensor, list or dict of Keras inputs).
        member_outputs: The `(batch, k, units)` head output, before any activation.
        activation: `softmax`, `sigmoid` or None: applied per member before averaging.
        name: Name of the prediction model (the training model adds `_members`).

    Returns:
        `(train_model, predict_model)`: `(batch, k, units)` and `(batch, units)` outputs.
    """
    import keras  # deferred: Keras loads TensorFlow

    from kerasflow.features.tabm_layers import MeanOverMembers  # deferred: imports Keras

    train_model = keras.Model(inputs, member_outputs, name=f"{name}_members")
    averaged = MeanOverMembers(activation, name="output")(member_outputs)
    return train_model, keras.Model(inputs, averaged, name=name)


def member_loss(loss: Any) -> Any:
    """The TabM training loss: the base loss of every member against the label, averaged over members.

    Args:
        loss: A Keras loss (name, config or instance) scoring one member's
            output, e.g. `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`.

    Returns:
        A `MemberMeanLoss`.
    """
    from kerasflow.features.tabm_layers import MemberMeanLoss  # deferred: imports Keras

    return MemberMeanLoss(loss)


# weights the TabM paper trains without weight decay: biases, normalization scales and shifts, the
# periodic embedding's frequencies and the piecewise-linear embedding's plain linear part
NO_WEIGHT_DECAY = ("bias", "gamma", "beta", "frequencies", "linear_kernel")


def tabm_optimizer(learning_rate: float = 2e-3, weight_decay: float = 3e-4) -> Any:
    """TabM's default optimizer: AdamW, without weight decay on the weights the paper exempts.

    Args:
        learning_rate: The learning rate (the paper tunes it in LogUniform[1e-4, 5e-3]).
        weight_decay: Decoupled weight decay (the paper: 0 or LogUniform[1e-4, 1e-1]).

    Returns:
        A `keras.optimizers.AdamW`.
    """
    import keras  # deferred: Keras loads TensorFlow

    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
    return optimizer
