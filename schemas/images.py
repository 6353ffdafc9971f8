"""Config models of image pipelines: image data, CNN models, augmentation and transfer learning.

An image pipeline sets `data.image` (see `ImageConfig`) and a `model` of
kind `cnn` (see `CNNConfig`). Image data come either from a folder with one
subfolder per class, or from a table whose pixel columns are reshaped to
`[height, width, channels]` (e.g. the built-in `digits`):

    data: {source: digits, target: target, image: {size: [8, 8], channels: 1}}
    data: {source: data/images/, target: label, image: {size: [16, 16], channels: 1}}

A folder `source` may have a folder `test_source` (same class names), whose
files are the test split; `image_source_problems` refuses the combinations
that cannot work (a folder with a table, a table with a folder).

This module imports only `kerasflow.schemas.base`, so `kerasflow.schemas.config` can import it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from kerasflow.schemas.base import Activation, Fraction, InitializerConfig, PositiveInt, Section

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
Channels = Literal[1, 3, 4]
FillMode = Literal["constant", "nearest", "reflect", "wrap"]
Size = tuple[PositiveInt, PositiveInt]

# keras.applications architectures that can serve as a base, with the pixel
# range each expects: "tf" is [-1, 1], "raw" is [0, 255] (the model
# rescales inside). Caffe- and torch-style architectures (ResNet50, VGG,
# DenseNet) need per-channel preprocessing and are not offered.
APPLICATIONS: dict[str, str] = {
    "MobileNet": "tf",
    "MobileNetV2": "tf",
    "MobileNetV3Small": "raw",
    "MobileNetV3Large": "raw",
    "NASNetMobile": "tf",
    "Xception": "tf",
    "InceptionV3": "tf",
    "ResNet50V2": "tf",
    "EfficientNetB0": "raw",
    "EfficientNetB1": "raw",
    "EfficientNetV2B0": "raw",
    "ConvNeXtTiny": "raw",
}
_ALPHA_ARCHITECTURES = frozenset({"MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large"})

# Tunable parameters of the `cnn` family: name -> (accepted types, value type).
CNN_TUNABLE: dict[str, tuple[tuple[str, ...], Any]] = {
    "model.conv_blocks": (("int", "choice"), Annotated[int, Field(ge=1, le=8)]),
    "model.filters": (("int", "choice"), PositiveInt),
    "model.kernel_size": (("int", "choice"), PositiveInt),
    "model.convolution": (("choice",), Literal["conv2d", "separable"]),
    "model.pooling": (("choice",), Literal["max", "none"]),
    "model.reduce": (("choice",), Literal["flatten", "global_average"]),
    "model.dense_units": (("int", "choice"), PositiveInt),
    "model.head_dropout": (("float", "choice"), Fraction),
}


class ImageConfig(Section):
    """Image inputs: a folder of class subfolders, or pixel columns of a table.

    A `source` that is a directory is read as one subfolder per class (the
    folder name is the label, stored in the `data.target` column); files in
    class folders are read recursively, hidden files are ignored. Any other
    source is a table whose feature columns (`data.features`, default all
    but the target) hold the pixels in row-major `[height, width, channels]`
    order, like the built-in `digits` (8x8x1).

    `image: {}` is enough for a folder: its `size` and `channels` are then
    inferred from the headers of a sample of its files
    (`kerasflow.data.images.infer_image_shape`), before anything is decoded,
    and recorded in `inferred`.

    Args:
        size: `[height, width]`. Files are resized to it; pixel columns are
            reshaped to it. Default: for a folder, the most common size of
            a sample of its files; a table of pixel columns must give it.
        channels: 1 (grayscale), 3 (RGB) or 4 (RGBA). Default: for a
            folder, 1 when every sampled file is grayscale, else 3; for
            pixel columns, the column count over `height * width` (3 when
            that is not 1, 3 or 4).
        max_value: Largest raw pixel value; the model's `Rescaling` layer
            maps `[0, max_value]` to `[0, 1]`. Default 255 for files and the
            training maximum for pixel columns.
        extensions: File extensions read as images, lower case. Default
            `.png .jpg .jpeg .bmp .gif .webp .tif .tiff`.
        on_corrupt: `fail` (default) stops the run naming the unreadable,
            corrupt or non-image files (the first ten, and how many; the
            logged `images/report.json` lists all); `skip` leaves them out
            and reports them.
        on_channel_mismatch: `fail` stops the run naming the files whose
            channel count is not `channels` (the first ten, and how many);
            `convert` converts such files (e.g. RGB to grayscale) in
            training and serving. Default `fail`, or `convert` when
            `channels` is inferred.
        in_memory: How training and evaluation read a folder's images:
            `true` decodes every image into memory once (fastest for small
            folders); `false` streams them from disk with `tf.data`, batch
            by batch, so a folder larger than memory trains, k-folds, tunes
            and scores in bounded memory; `auto` (default) streams when the
            decoded images (float32, `rows x height x width x channels x 4`
            bytes) would take more than 256 MiB or an eighth of the
            available memory. Pixel tables are always in memory.
        inferred: Set by kerasflow, not by hand: the fields it inferred from
            the data (`size`, `channels`, `on_channel_mismatch`), so the run's
            params and config say which values were chosen from the files.
    """

    size: Size | None = None
    channels: Channels | None = None
    max_value: Annotated[float, Field(gt=0)] | None = None
    extensions: list[str] = Field(default_factory=lambda: list(IMAGE_EXTENSIONS))
    on_corrupt: Literal["fail", "skip"] = "fail"
    on_channel_mismatch: Literal["fail", "convert"] = "fail"
    in_memory: Literal["auto"] | bool = "auto"
    inferred: list[Literal["size", "channels", "on_channel_mismatch"]] = Field(default_factory=list)

    @field_validator("extensions")
    @classmethod
    def _dotted_lower(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("list at least one extension")
        return [v.lower() if v.startswith(".") else f".{v.lower()}" for v in values]

    @property
    def complete(self) -> bool:
        """True when `size` and `channels` are known (given, or inferred from the data)."""
        return self.size is not None and self.channels is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        """`(height, width, channels)` of one model input.

        Raises:
            ValueError: `size` or `channels` is neither given nor inferred yet.
        """
        if self.size is None or self.channels is None:
            raise ValueError("data.image.size and channels are not known yet: give them, or let the run infer "
                             "them from the files of a folder source")
        return (self.size[0], self.size[1], self.channels)


class AugmentationConfig(Section):
    """Random image augmentation, active only while training.

    The options mirror Keras's `ImageDataGenerator`; they are implemented
    with Keras augmentation layers inside the model (`RandomRotation`,
    `RandomTranslation`, `RandomShear`, `RandomZoom`, `RandomFlip`), which
    pass images through unchanged at inference.

    Args:
        rotation_range: Maximum rotation in degrees, either way. Default 0.
        width_shift_range: Maximum horizontal shift as a fraction of the
            width. Default 0.
        height_shift_range: Maximum vertical shift as a fraction of the
            height. Default 0.
        shear_range: Maximum shear angle in degrees (at most 45). Default 0.
        zoom_range: Zoom factor range: a float `z` means `[1 - z, 1 + z]`,
            or give `[lower, upper]`; factors above 1 zoom out. Default 0.
        horizontal_flip: Randomly flip left-right. Default false.
        vertical_flip: Randomly flip upside down. Default false.
        fill_mode: How points outside the image are filled: `nearest`
            (default), `constant`, `reflect` or `wrap`.
        cval: Fill value for `fill_mode: constant`, in raw pixel units.
            Default 0.
    """

    rotation_range: Annotated[float, Field(ge=0, le=180)] = 0.0
    width_shift_range: Fraction = 0.0
    height_shift_range: Fraction = 0.0
    shear_range: Annotated[float, Field(ge=0, le=45)] = 0.0
    zoom_range: Annotated[float, Field(ge=0, lt=1)] | tuple[
        Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: FillMode = "nearest"
    cval: float = 0.0

    @field_validator("zoom_range")
    @classmethod
    def _ordered_zoom(cls, value: Any) -> Any:
        if isinstance(value, tuple) and not 0 < value[0] <= value[1] <= 2:
            raise ValueError("[lower, upper] needs 0 < lower <= upper <= 2")
        return value

    @property
    def active(self) -> bool:
        """True when any augmentation is configured."""
        return bool(self.rotation_range or self.width_shift_range or self.height_shift_range
                    or self.shear_range or self.zoom_factors() or self.horizontal_flip or self.vertical_flip)

    def zoom_factors(self) -> tuple[float, float] | None:
        """Returns `RandomZoom`'s `(lower, upper)` factor, or None for no zoom.

        `ImageDataGenerator` zooms by a scale `s` in `[1 - z, 1 + z]` with
        `s > 1` zooming out; `RandomZoom` takes `s - 1`.
        """
        low, high = (1.0 - self.zoom_range, 1.0 + self.zoom_range) if isinstance(self.zoom_range, float) \
            else self.zoom_range
        return None if low == high == 1.0 else (low - 1.0, high - 1.0)

    def shear_factor(self) -> float:
        """Returns `RandomShear`'s `x_factor` for `shear_range` degrees (tan of the angle)."""
        return min(1.0, math.tan(math.radians(self.shear_range)))


class FineTuneConfig(Section):
    """Phase 2 of transfer learning: the base's top layers are unfrozen and trained.

    Args:
        layers: How many of the base's last layers are unfrozen
            (`BatchNormalization` layers stay frozen). Required.
        learning_rate: Learning rate of this phase, usually far below the
            first phase's. Default 1e-5.
        epochs: Maximum epochs of this phase; early stopping applies as in
            training. Default 10.
    """

    layers: PositiveInt
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 1e-5
    epochs: PositiveInt = 10


class BaseModelConfig(Section):
    """A pretrained base under the CNN head (transfer learning).

    The base is frozen (`trainable = False`) before the model is compiled,
    so phase 1 trains only the head; `fine_tune` adds phase 2. Nothing is
    ever downloaded.

    Args:
        source: One of: a `.keras` file; a registered MLflow model,
            `models:/name@alias` or `models:/name/version` (a kerasflow
            model, whose Keras file is found in its artifacts); or a
            `keras.applications` architecture name (see `APPLICATIONS`),
            which needs `weights`.
        weights: Local weights file (`.h5`, `.weights.h5`) of a
            `keras.applications` architecture built without its top.
        output_layer: Layer whose output is the extracted features. Default:
            `features` in kerasflow models, else the layer before the last.
        input_size: `[height, width]` a `keras.applications` architecture is
            built for; images are resized to it inside the model. Default:
            the data's size. Saved models run at their own input size
            (images are resized to it when it differs).
        input_range: `[low, high]` pixel range the base expects. Default:
            raw pixels for kerasflow models (they rescale inside), the
            architecture's range for `keras.applications`, `[0, 1]` for
            other `.keras` files.
        alpha: Width multiplier of the MobileNet architectures. Default 1.
        fine_tune: Phase 2 settings, or null (default) for feature
            extraction only.
    """

    source: Annotated[str, Field(min_length=1)]
    weights: str | None = None
    output_layer: str | None = None
    input_size: Size | None = None
    input_range: tuple[float, float] | None = None
    alpha: Annotated[float, Field(gt=0, le=2)] = 1.0
    fine_tune: FineTuneConfig | None = None

    @property
    def origin(self) -> Literal["application", "registry", "file"]:
        """Where the base comes from."""
        if self.source in APPLICATIONS:
            return "application"
        return "registry" if self.source.startswith("models:/") else "file"

    @model_validator(mode="after")
    def _reference_is_well_formed(self) -> "BaseModelConfig":
        if self.origin == "application":
            if not self.weights:
                raise ValueError(f"{self.source} needs a local weights file (weights: path/to/file.h5); "
                                 "nothing is downloaded")
            if self.alpha != 1.0 and self.source not in _ALPHA_ARCHITECTURES:
                raise ValueError(f"alpha applies to {sorted(_ALPHA_ARCHITECTURES)} only, not {self.source}")
            return self
        extra = [key for key, given in (("weights", self.weights), ("input_size", self.input_size),
                                        ("alpha", self.alpha != 1.0)) if given]
        if extra:
            raise ValueError(f"{', '.join(extra)}: for keras.applications architectures only; "
                             f"{self.source!r} is a model file or registered model")
        if self.origin == "registry" and not _is_model_uri(self.source):
            raise ValueError(f"{self.source!r} is not models:/name@alias or models:/name/version")
        if self.origin == "file" and not self.source.endswith(".keras"):
            raise ValueError(f"{self.source!r} is neither a .keras file, a models:/ URI nor one of the "
                             f"architectures {', '.join(APPLICATIONS)}")
        if self.input_range is not None and self.input_range[0] >= self.input_range[1]:
            raise ValueError(f"input_range must be [low, high] with low < high, got {list(self.input_range)}")
        return self


class CNNConfig(Section):
    """A convolutional network for images.

    Inside the model: augmentation (training only), a `Rescaling` layer,
    convolution blocks (or a pretrained `base`), then `Flatten` or
    `GlobalAveragePooling2D` and a dense head. Each block is
    `convs_per_block` convolutions (each with optional batch normalization
    and the activation), then 2x2 max pooling and dropout.

    Tunable names: `model.conv_blocks` (default: `len(filters)`),
    `model.filters` (every block), `model.kernel_size`,
    `model.convolution`, `model.pooling`, `model.batch_norm`,
    `model.activation`, `model.use_dropout`, `model.dropout`, `model.l2`,
    `model.reduce`, `model.dense_units` (every head layer) and
    `model.head_dropout`, plus the `training.optimizer.*` names.

    Args:
        kind: `cnn`.
        filters: Filters of each convolution block. Default [32, 64].
        kernel_size: Convolution kernel size. Default 3.
        convs_per_block: Convolutions per block. Default 1.
        convolution: `conv2d` (default) or `separable` (`SeparableConv2D`).
        activation: Activation of convolutions and dense layers. Default `relu`.
        initializer: Kernel initializer. Default `he_normal`.
        batch_norm: `BatchNormalization` after each convolution. Default true.
        pooling: `max` (default) adds `MaxPooling2D` after each block; `none`.
        dropout: Dropout rate after each block. Default 0.
        l2: L2 penalty of convolution and dense kernels. Default 0.
        reduce: `global_average` (default, `GlobalAveragePooling2D`) or
            `flatten`, between the convolutions and the head.
        dense_units: Units of the head's hidden layers. Default [64].
        head_dropout: Dropout rate before each head layer. Default 0.
        augmentation: See `AugmentationConfig`. Default none.
        base: A pretrained base replacing the convolution blocks; see
            `BaseModelConfig`. Default none.
    """

    kind: Literal["cnn"] = "cnn"
    filters: Annotated[list[PositiveInt], Field(min_length=1)] = Field(default_factory=lambda: [32, 64])
    kernel_size: PositiveInt = 3
    convs_per_block: PositiveInt = 1
    convolution: Literal["conv2d", "separable"] = "conv2d"
    activation: Activation = "relu"
    initializer: InitializerConfig = Field(default_factory=lambda: InitializerConfig(name="he_normal"))
    batch_norm: bool = True
    pooling: Literal["max", "none"] = "max"
    dropout: Fraction = 0.0
    l2: Annotated[float, Field(ge=0)] = 0.0
    reduce: Literal["global_average", "flatten"] = "global_average"
    dense_units: list[PositiveInt] = Field(default_factory=lambda: [64])
    head_dropout: Fraction = 0.0
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    base: BaseModelConfig | None = None


def image_model_problems(data_image: ImageConfig | None, kind: str | None) -> list[tuple[str, str]]:
    """Cross-section rules between `data.image` and `model`.

    Args:
        data_image: The `data.image` section, or None.
        kind: The `model` section's `kind`.

    Returns:
        `(dotted path, message)` pairs; empty when the sections fit.
    """
    if kind == "cnn" and data_image is None:
        return [("model.kind", "a cnn needs image data: set data.image (size and channels)")]
    if data_image is not None and kind != "cnn":
        return [("data.image", f"image data need an image model (model.kind: cnn), not {kind!r}")]
    return []


def fine_tune_problems(config: Section) -> list[tuple[str, str]]:
    """Cross-section rule between `model.base.fine_tune` and `split.final`.

    Args:
        config: The `PipelineConfig` with a `cnn` model (typed by its base
            class: `kerasflow.schemas.config` imports this module).

    Returns:
        `(dotted path, message)` pairs; empty when the sections fit.
    """
    base, split = config.model.base, config.split
    if split.kind == "kfold" and split.final == "ensemble" and base is not None and base.fine_tune is not None:
        return [("split.final", "an ensemble of the fold models skips the fine-tuning phase "
                                "of model.base.fine_tune; set split.final: refit")]
    return []


def image_source_problems(source: str, test_source: str | None) -> list[tuple[str, str]]:
    """Cross-field rules between `data.source` and `data.test_source`.

    A folder of class subfolders as `source` takes a folder of the same
    layout as `test_source`; a table (or built-in set) takes a CSV or
    Parquet file. Only `Path.is_dir` is asked of the filesystem; paths that
    do not exist are left to the load step.

    Args:
        source: `data.source`.
        test_source: `data.test_source`, or None.

    Returns:
        `(dotted path, message)` pairs; empty when the sources fit.
    """
    if not test_source:
        return []
    folder, test = Path(source).expanduser(), Path(test_source).expanduser()
    if folder.is_dir() and not test.is_dir():
        kind = f"a {test.suffix} file" if test.suffix else "not a folder"
        return [("data.test_source", f"{test_source!r} is {kind}, but data.source {source!r} is a "
                                     f"folder of class subfolders: give the test images as a folder of the same "
                                     f"class subfolders (a table of test rows goes with a table source)")]
    if test.is_dir() and not folder.is_dir():
        return [("data.test_source", f"{test_source!r} is a folder, but data.source {source!r} is a "
                                     f"table (or built-in set): give the test rows as a CSV or Parquet file with "
                                     f"the columns of data.source (a test folder goes with a folder source)")]
    if test.is_dir() and test.resolve() == folder.resolve():
        return [("data.test_source", f"{test_source!r} is the same folder as data.source; keep the test "
                                     f"images in a folder of their own")]
    return []


def image_size_problems(data_image: ImageConfig | None, source: str) -> list[tuple[str, str]]:
    """`data.image.size` may be left out for a folder of class subfolders only (it is inferred from its files).

    Args:
        data_image: The `data.image` section, or None.
        source: `data.source`.

    Returns:
        `(dotted path, message)` pairs; empty when the size is given or can be inferred.
    """
    if data_image is None or data_image.size is not None or Path(source).expanduser().is_dir():
        return []
    return [("data.image.size", f"{source!r} is not a folder of class subfolders, whose image size is inferred: "
                                f"give [height, width] for its pixel columns (or correct the folder's path)")]


def _is_model_uri(text: str) -> bool:
    rest = text.removeprefix("models:/")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        return bool(name) and bool(alias) and "/" not in alias
    name, _, version = rest.rpartition("/")
    return bool(name) and version.isdigit()
