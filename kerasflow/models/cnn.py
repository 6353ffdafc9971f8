"""The `cnn` model family: augmentation, convolution blocks, pretrained bases.

`build_cnn(hp, spec)` is what `kerasflow.models.families.build_model` calls
for `model.kind: cnn`, for tuner trials and final training alike. The model
takes the raw `image` input (`kerasflow.features.images.ImageSpec`) and holds its own
preprocessing: augmentation layers (active only in training), then a
`Rescaling` layer, then convolution blocks or a frozen pretrained base, a
`features` layer (`Flatten` or `GlobalAveragePooling2D`) and a dense head.

A base comes from a `.keras` file, a registered kerasflow model (resolved
to a local file by the pipeline's preparation step, which records it in
the `ImageSpec`) or a `keras.applications` architecture with a local
weights file. It is frozen before the model is compiled (phase 1);
`kerasflow.training.finetune.fine_tune_saved_model` unfreezes its top
layers (`unfreeze_top`) and trains on at a lower learning rate (phase 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kerasflow.features.images import IMAGE_INPUT, ImageSpec
from kerasflow.features.labels import inverse_target, training_loss
from kerasflow.heavy import tensorflow_banners_dropped
from kerasflow.models.errors import BaseModelError  # noqa: F401  (raised here; re-exported)
from kerasflow.models.families import learning_rate_space, power_of_two, register_family
from kerasflow.models.hyper import activation_layer, build_initializer, build_optimizer, choose, widths_around
from kerasflow.schemas.config import PipelineConfig
from kerasflow.schemas.images import APPLICATIONS, AugmentationConfig, BaseModelConfig, CNNConfig

KERASFLOW_MODEL_NAME = "kerasflow"
BASE_NAME = "base"
FEATURES_LAYER = "features"
FLATTEN_AT_MOST = 4096  # values left after the default CNN's blocks that it flattens rather than averages


def build_cnn(hp: Any, spec: Any) -> Any:
    """Builds and compiles a CNN for image inputs.

    Args:
        hp: A Keras Tuner `HyperParameters`, or None to use config values.
        spec: The `kerasflow.models.spec.ModelSpec`; `spec.model` is a `CNNConfig`
            and `spec.features` an `ImageSpec`.

    Returns:
        A compiled `keras.Model` named `kerasflow` with one `image` input.

    Raises:
        BaseModelError: The configured base cannot be used.
    """
    import keras

    cfg, image = spec.model, spec.features
    inputs = keras.Input(shape=image.shape, name=IMAGE_INPUT, dtype="float32")
    x = augment(inputs, cfg.augmentation, spec.seed)
    if cfg.base is None:
        x = keras.layers.Rescaling(1.0 / image.max_value, name="rescaling")(x)
        x = _conv_blocks(x, hp, spec)
    else:
        x = _base_features(x, cfg.base, image)
    x = _reduce(x, choose(hp, spec, "model.reduce", cfg.reduce))
    x = _head(x, hp, spec)
    units, activation, loss = spec.labels.output()
    outputs = inverse_target(keras.layers.Dense(units, activation=activation, name="output")(x), spec.labels)
    model = keras.Model(inputs=inputs, outputs=outputs, name=KERASFLOW_MODEL_NAME)
    model.compile(optimizer=build_optimizer(hp, spec), loss=training_loss(spec.labels), metrics=spec.labels.metrics())
    return model


def augment(x: Any, cfg: AugmentationConfig, seed: int) -> Any:
    """Adds the configured random augmentation layers.

    Keras augmentation layers transform only when called in training mode,
    so `predict` and `evaluate` see the images unchanged.

    Args:
        x: The image tensor.
        cfg: The `AugmentationConfig`.
        seed: Base seed; each layer gets its own.

    Returns:
        The augmented tensor (`x` itself when nothing is configured).
    """
    import keras

    fill = {"fill_mode": cfg.fill_mode, "fill_value": cfg.cval}
    layers = keras.layers
    if cfg.rotation_range:
        x = layers.RandomRotation(cfg.rotation_range / 360.0, seed=seed, name="augment_rotation", **fill)(x)
    if cfg.width_shift_range or cfg.height_shift_range:
        x = layers.RandomTranslation(cfg.height_shift_range, cfg.width_shift_range, seed=seed + 1,
                                     name="augment_translation", **fill)(x)
    if cfg.shear_range:
        # (0, f) rather than f: the layer flips the sign itself, and Keras cannot reload a negative factor
        x = layers.RandomShear(x_factor=(0.0, cfg.shear_factor()), y_factor=(0.0, 0.0), seed=seed + 2,
                               name="augment_shear", **fill)(x)
    zoom = cfg.zoom_factors()
    if zoom:
        x = layers.RandomZoom(height_factor=zoom, seed=seed + 3, name="augment_zoom", **fill)(x)
    flips = [m for m, on in (("horizontal", cfg.horizontal_flip), ("vertical", cfg.vertical_flip)) if on]
    if flips:
        x = layers.RandomFlip("_and_".join(flips), seed=seed + 4, name="augment_flip")(x)
    return x


def load_base(cfg: BaseModelConfig, image: ImageSpec) -> tuple[Any, tuple[float, float] | None]:
    """Loads a pretrained base as a frozen feature extractor.

    Args:
        cfg: The `BaseModelConfig`.
        image: The image spec; `base_file` holds a resolved registered model.

    Returns:
        `(base, input_range)`: the frozen `keras.Model` (from the input to
        the feature layer), and the pixel range it expects by default
        (None for kerasflow models, which take raw pixels).

    Raises:
        BaseModelError: The file, registered model or weights are missing
            or unusable, or the output layer does not exist.
    """
    if cfg.origin == "application":
        base, default_range = _application(cfg, image), _application_range(cfg.source)
    else:
        path = image.base_file if cfg.origin == "registry" else cfg.source
        if not path:
            raise BaseModelError(f"model.base.source {cfg.source}: the registered model was not resolved to a "
                                 "local file; it is downloaded by the pipeline's preprocessing step")
        source = _load_keras_file(path, cfg.source)
        base = _features_model(source, cfg.output_layer, cfg.source)
        default_range = None if source.name == KERASFLOW_MODEL_NAME else (0.0, 1.0)
    base.trainable = False
    return base, tuple(cfg.input_range) if cfg.input_range else default_range


def find_base(model: Any) -> Any | None:
    """Returns the nested pretrained base model of a CNN, or None."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if nested else None


def unfreeze_top(model: Any, layers: int) -> list[str]:
    """Unfreezes the top layers of a model's base for fine-tuning.

    `BatchNormalization` layers stay frozen (the base also runs in inference
    mode), as Keras's transfer-learning guide advises.

    Args:
        model: A CNN built with a base.
        layers: How many of the base's last layers to unfreeze.

    Returns:
        Names of the unfrozen layers that have weights.

    Raises:
        BaseModelError: The model has no base.
    """
    import keras

    base = find_base(model)
    if base is None:
        raise BaseModelError("model.base.fine_tune: the model has no pretrained base to fine-tune")
    base.trainable = True
    first = max(0, len(base.layers) - layers)
    unfrozen = []
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


def default_values(cfg: CNNConfig) -> dict[str, Any]:
    """Returns the config value of every tunable `cnn` parameter, as `build_cnn` uses it without a tuner.

    Args:
        cfg: The `CNNConfig`.

    Returns:
        `{dotted_name: value}`.
    """
    return {"model.conv_blocks": len(cfg.filters), "model.filters": cfg.filters[0],
            "model.kernel_size": cfg.kernel_size, "model.convolution": cfg.convolution, "model.pooling": cfg.pooling,
            "model.batch_norm": cfg.batch_norm, "model.activation": cfg.activation, "model.l2": cfg.l2,
            "model.use_dropout": cfg.dropout > 0, "model.dropout": cfg.dropout, "model.reduce": cfg.reduce,
            "model.dense_units": cfg.dense_units[0] if cfg.dense_units else None,
            "model.head_dropout": cfg.head_dropout}


def _conv_blocks(x: Any, hp: Any, spec: Any) -> Any:
    import keras

    cfg = spec.model
    blocks = choose(hp, spec, "model.conv_blocks", len(cfg.filters))
    pooling = choose(hp, spec, "model.pooling", cfg.pooling)
    use_dropout = choose(hp, spec, "model.use_dropout", cfg.dropout > 0)
    dropout = choose(hp, spec, "model.dropout", cfg.dropout) if use_dropout else 0.0
    for i in range(blocks):
        filters = choose(hp, spec, "model.filters", cfg.filters[min(i, len(cfg.filters) - 1)])
        x = _conv_block(x, i, filters, hp, spec)
        if pooling == "max":
            x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, seed=spec.seed + i, name=f"dropout_{i}")(x)
    return x


def _conv_block(x: Any, i: int, filters: int, hp: Any, spec: Any) -> Any:
    import keras

    cfg = spec.model
    kernel = choose(hp, spec, "model.kernel_size", cfg.kernel_size)
    kind = choose(hp, spec, "model.convolution", cfg.convolution)
    batch_norm = choose(hp, spec, "model.batch_norm", cfg.batch_norm)
    activation = choose(hp, spec, "model.activation", cfg.activation)
    l2 = choose(hp, spec, "model.l2", cfg.l2)
    for j in range(cfg.convs_per_block):
        init = build_initializer(cfg.initializer, spec.seed + 10 * i + j)
        reg = keras.regularizers.L2(l2) if l2 else None
        common = {"padding": "same", "use_bias": not batch_norm, "name": f"conv_{i}_{j}"}
        if kind == "separable":
            layer = keras.layers.SeparableConv2D(filters, kernel, depthwise_initializer=init,
                                                 pointwise_initializer=init, depthwise_regularizer=reg,
                                                 pointwise_regularizer=reg, **common)
        else:
            layer = keras.layers.Conv2D(filters, kernel, kernel_initializer=init, kernel_regularizer=reg, **common)
        x = layer(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{i}_{j}")(x)
        x = activation_layer(activation, f"{activation}_{i}_{j}")(x)
    return x


def _reduce(x: Any, how: str) -> Any:
    import keras

    if len(x.shape) == 2:
        return keras.layers.Identity(name=FEATURES_LAYER)(x)
    if how == "flatten":
        return keras.layers.Flatten(name=FEATURES_LAYER)(x)
    return keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)


def _head(x: Any, hp: Any, spec: Any) -> Any:
    import keras

    cfg = spec.model
    rate = choose(hp, spec, "model.head_dropout", cfg.head_dropout)
    activation = choose(hp, spec, "model.activation", cfg.activation)
    l2 = choose(hp, spec, "model.l2", cfg.l2)
    for i, default in enumerate(cfg.dense_units):
        if rate:
            x = keras.layers.Dropout(rate, seed=spec.seed + 100 + i, name=f"head_dropout_{i}")(x)
        x = keras.layers.Dense(choose(hp, spec, "model.dense_units", default), name=f"head_{i}",
                               kernel_initializer=build_initializer(cfg.initializer, spec.seed + 100 + i),
                               kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)(x)
        x = activation_layer(activation, f"head_{activation}_{i}")(x)
    if rate:
        x = keras.layers.Dropout(rate, seed=spec.seed + 199, name="head_dropout_out")(x)
    return x


def _base_features(x: Any, cfg: BaseModelConfig, image: ImageSpec) -> Any:
    import keras

    base, input_range = load_base(cfg, image)
    if input_range is not None:
        low, high = input_range
        x = keras.layers.Rescaling((high - low) / image.max_value, offset=low, name="rescaling")(x)
    height, width, channels = base.input_shape[1:]
    if (height, width) != (image.height, image.width) and height and width:
        x = keras.layers.Resizing(height, width, name="resize_to_base")(x)
    if channels != image.channels:
        if not (image.channels == 1 and channels == 3):
            raise BaseModelError(f"model.base.source {cfg.source} takes {channels} channels, "
                                 f"data.image.channels is {image.channels}")
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    return base(x, training=False)


def _application(cfg: BaseModelConfig, image: ImageSpec) -> Any:
    import keras

    weights = Path(cfg.weights).expanduser()
    if not weights.is_file():
        raise BaseModelError(f"model.base.weights: {weights.resolve()} does not exist; weights of "
                             f"{cfg.source} are never downloaded, give a local .h5 file")
    height, width = cfg.input_size or (image.height, image.width)
    kwargs: dict[str, Any] = {"include_top": False, "weights": str(weights), "input_shape": (height, width, 3)}
    if cfg.alpha != 1.0:
        kwargs["alpha"] = cfg.alpha
    try:
        with tensorflow_banners_dropped():
            return getattr(keras.applications, cfg.source)(**kwargs)
    except (ValueError, OSError, KeyError) as exc:
        raise BaseModelError(f"model.base: cannot build {cfg.source} at {height}x{width} with weights "
                             f"{weights}: {exc}") from None


def _application_range(name: str) -> tuple[float, float]:
    return (-1.0, 1.0) if APPLICATIONS[name] == "tf" else (0.0, 255.0)


def _load_keras_file(path: str, reference: str) -> Any:
    import keras

    import kerasflow.features.layers  # noqa: F401  (registers kerasflow's custom layers; deferred: imports Keras)

    file = Path(path).expanduser()
    if not file.is_file():
        raise BaseModelError(f"model.base.source {reference}: {file.resolve()} does not exist")
    try:
        return keras.models.load_model(file, compile=False)
    except Exception as exc:  # Keras raises many types for a bad archive
        raise BaseModelError(f"model.base.source {reference}: cannot load {file} as a Keras model: {exc}") from None


def _features_model(source: Any, output_layer: str | None, reference: str) -> Any:
    import keras

    if len(source.inputs) != 1 or len(source.inputs[0].shape) != 4:
        shapes = [tuple(i.shape) for i in source.inputs]
        raise BaseModelError(f"model.base.source {reference}: takes inputs of shapes {shapes}; "
                             "a base takes one image input (batch, height, width, channels)")
    names = [layer.name for layer in source.layers]
    name = output_layer or (FEATURES_LAYER if FEATURES_LAYER in names else names[-2] if len(names) > 1 else None)
    if name not in names:
        raise BaseModelError(f"model.base.output_layer {name!r} is not a layer of {reference}; "
                             f"layers: {', '.join(names)}")
    return keras.Model(source.inputs, source.get_layer(name).output, name=BASE_NAME)


def default_section(config: PipelineConfig, profile: Any) -> dict[str, Any] | None:
    """The `model` section of image data (the profile's `images`) without one: a CNN sized to the images.

    Blocks of two 3x3 convolutions with batch normalization, 2x2 max
    pooling and light dropout, doubling the filters from 32 (capped at
    128): two blocks up to 32 pixels, three up to 96, four above. What is
    left is flattened when it is small (at most 4,096 values, e.g. 7x7x64
    of a 28x28 image), which keeps the position of strokes and parts,
    else averaged (`global_average`); then a dense layer of 128 with
    dropout 0.3.
    """
    if not profile.images:
        return None
    size = config.data.image.size if config.data.image is not None and config.data.image.size else (32, 32)
    blocks = 2 if max(size) <= 32 else 3 if max(size) <= 96 else 4
    filters = [min(128, 32 * 2 ** i) for i in range(blocks)]
    left = (size[0] // 2 ** blocks) * (size[1] // 2 ** blocks) * filters[-1]
    return {"kind": "cnn", "filters": filters, "convs_per_block": 2, "batch_norm": True, "dropout": 0.1,
            "reduce": "flatten" if left <= FLATTEN_AT_MOST else "global_average", "dense_units": [128],
            "head_dropout": 0.3}


def default_training(training: dict[str, Any], profile: Any) -> dict[str, Any]:
    """The `training` section of a CNN without one: a larger step, fewer epochs, shorter patience.

    A batch-normalized CNN learns in a few dozen epochs at Adam's 2e-3; the
    table defaults (1e-3, 300 epochs, patience 20) spent most of a run
    waiting. The batch is about 1/50 of the training rows, a power of two
    from 32 to 128.
    """
    return {**training, "epochs": 60, "batch_size": power_of_two(profile.train_rows / 50, 32, 128),
            "optimizer": {"name": "adam", "learning_rate": 2e-3},
            "early_stopping": {**training["early_stopping"], "patience": 8},
            "reduce_lr": {**training["reduce_lr"], "patience": 3}}


def default_space(config: PipelineConfig, profile: Any) -> dict[str, Any]:
    """The `tuning.space` of a CNN whose `tuning` section leaves it out: small, as each trial is costly.

    The learning rate (half to twice the configured one) and the dense
    head: its width (half to twice the first dense layer's, when it has
    one) and its dropout (0 to 0.5). The convolutions stay as configured.

    Args:
        config: The pipeline config, with its defaults in place.
        profile: Its data's `DataProfile` (unused: the space follows the section).

    Returns:
        `{dotted name: parameter}`.
    """
    units = config.model.dense_units
    head = {"model.dense_units": {"type": "choice", "values": widths_around(units[0], below=1, cap=512)}} \
        if units else {}
    return {**learning_rate_space(config, 1 / 2, 2.0), **head,
            "model.head_dropout": {"type": "float", "min": 0.0, "max": 0.5, "step": 0.1}}


def describe_section(section: dict[str, Any]) -> str:
    """A few words about a chosen CNN section, e.g. ` [32, 64] filters, flatten`."""
    return f" {section['filters']} filters, {section['reduce']}"


register_family("cnn", build=build_cnn, default_values=default_values, tabular=False,
                pretrained_base=lambda model: model.base, unfreeze=unfreeze_top,
                hidden_layers=lambda model: [(f"model.dense_units[{i}]", u) for i, u in enumerate(model.dense_units)],
                dropouts=lambda model: [("model.dropout", model.dropout), ("model.head_dropout", model.head_dropout)],
                default_section=default_section, default_rank=0, default_training=default_training,
                describe_section=describe_section, default_space=default_space)
