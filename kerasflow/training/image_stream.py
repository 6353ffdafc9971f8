"""Image files streamed from disk: a `tf.data` pipeline instead of every decoded image in memory.

An image folder's rows are files. Held in memory, `n` images of
`height x width x channels` take `n * height * width * channels * 4` bytes
of float32 before the model sees one, and a folder larger than memory
cannot be trained on. Streamed, a partition keeps only its file paths:
`tf.data.Dataset.from_tensor_slices(paths)` shuffles the paths (not the
pixels), `tf.io.read_file` reads each file, the decoder the served model
uses (`kerasflow.features.images.decode_image`: Pillow, the same resize and
channel conversion, so training and serving see the same pixels) decodes
it, and batches are prefetched while the model trains. Memory is one
shuffle buffer of paths plus a few batches, whatever the folder's size.

`ImageSpec.streamed` (fitted by the image-folder kind from
`data.image.in_memory`) says which path a pipeline takes;
`kerasflow.training.rows.make_partition` then holds a `StreamedImages`
instead of arrays, and the fit, the search and the evaluation read it
through `fit_arguments` and `validation_data`.

Plain code: no Prefect, no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kerasflow.features.images import IMAGE_INPUT, PATH_COLUMN, ImageDataError, ImageSpec, decode_image
from kerasflow.features.tabular import as_model_inputs

PREDICT_BATCH = 256


@dataclass
class StreamedImages:
    """The named model input of image files, decoded batch by batch from disk.

    Stands in for `{"image": array}` in a `Partition`.

    Args:
        paths: The files, one per row.
        spec: The fitted `ImageSpec` (size, channels, conversion).
    """

    paths: np.ndarray
    spec: ImageSpec

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, mask: np.ndarray) -> "StreamedImages":
        """The rows a boolean mask (or positions) selects."""
        return StreamedImages(np.asarray(self.paths)[mask], self.spec)

    def dataset(self, y: Any = None, *, batch_size: int, shuffle: bool = False) -> Any:
        """Returns a `tf.data.Dataset` of `({"image": batch}, labels)` (or inputs only, without `y`).

        Args:
            y: Encoded labels, one per row, or None for inputs only. Default none.
            batch_size: Rows per batch.
            shuffle: Shuffle the rows anew every epoch (the paths are
                shuffled, seeded by the global seed `set_seed` sets). Default false.

        Returns:
            The dataset, batched and prefetched.
        """
        import tensorflow as tf  # deferred: TensorFlow only when a streamed partition is read

        spec = self.spec
        paths = tf.data.Dataset.from_tensor_slices(np.asarray(self.paths, dtype=str))
        data = paths if y is None else tf.data.Dataset.zip((paths, tf.data.Dataset.from_tensor_slices(y)))
        if shuffle:
            data = data.shuffle(max(1, len(self)), reshuffle_each_iteration=True)

        def decode(content: Any) -> np.ndarray:
            return decode_image(bytes(content), (spec.height, spec.width), spec.channels, convert=spec.convert)

        def read(path: Any) -> Any:
            image = tf.numpy_function(decode, [tf.io.read_file(path)], tf.float32, stateful=False)
            return {IMAGE_INPUT: tf.ensure_shape(image, spec.shape)}

        data = data.map(read if y is None else (lambda path, label: (read(path), label)),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def streamed_inputs(frame: Any, spec: ImageSpec) -> StreamedImages:
    """The streamed input of listing rows (their `path` column).

    Raises:
        ImageDataError: The rows have no `path` column.
    """
    if PATH_COLUMN not in frame.columns:
        raise ImageDataError("input", [f"streamed image rows need a {PATH_COLUMN!r} column of files; "
                                       f"got columns {list(frame.columns)}"])
    return StreamedImages(frame[PATH_COLUMN].astype(str).to_numpy(), spec)


def is_streamed(x: Any) -> bool:
    """True when a partition's inputs are streamed from disk (`StreamedImages`)."""
    return isinstance(x, StreamedImages)


def fit_arguments(x: Any, y: Any, batch_size: int, *, shuffle: bool = True) -> dict[str, Any]:
    """The `x`, `y`, `batch_size` and `shuffle` arguments of `model.fit` (or `evaluate`) for a partition.

    Args:
        x: Named arrays, or `StreamedImages`.
        y: Encoded labels.
        batch_size: Rows per batch.
        shuffle: Shuffle every epoch. Default true.

    Returns:
        Keyword arguments: a dataset for streamed inputs, else the arrays.
    """
    if is_streamed(x):
        return {"x": x.dataset(y, batch_size=batch_size, shuffle=shuffle)}
    return {"x": as_model_inputs(x), "y": y, "batch_size": batch_size, "shuffle": shuffle}


def validation_data(validation: tuple[Any, Any] | None, batch_size: int) -> Any:
    """The `validation_data` of `model.fit`: `(x, y)` arrays, or a dataset for streamed inputs."""
    if validation is None or not is_streamed(validation[0]):
        return None if validation is None else (as_model_inputs(validation[0]), validation[1])
    return validation[0].dataset(validation[1], batch_size=batch_size)


def streamed_bytes(rows: int, shape: tuple[int, int, int]) -> int:
    """Bytes `rows` decoded images of `shape` take as float32 in memory."""
    return int(rows) * int(np.prod(shape)) * 4


AUTO_LIMIT = 256 * 2**20  # decoded bytes above which `in_memory: auto` streams
AUTO_SHARE = 8  # ... or above this fraction (1/8) of the available memory


def should_stream(in_memory: bool | str, rows: int, shape: tuple[int, int, int],
                  available: int | None = None) -> bool:
    """Whether a folder's images are streamed from disk, from `data.image.in_memory`.

    Args:
        in_memory: `true`, `false` or `auto`.
        rows: Images the pipeline reads (every row of the listing).
        shape: `(height, width, channels)` of one model input.
        available: Bytes of memory available. Default: measured (psutil).

    Returns:
        True for `false`; for `auto`, True when the decoded images would
        take more than 256 MiB or an eighth of the available memory.
    """
    if in_memory != "auto":
        return not in_memory
    if available is None:
        import psutil  # deferred: only when a folder's size is weighed

        available = int(psutil.virtual_memory().available)
    return streamed_bytes(rows, shape) > min(AUTO_LIMIT, available // AUTO_SHARE)
