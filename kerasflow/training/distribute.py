"""Distribution strategies for the final fit (`training.distribute`).

- `auto` (default): `tf.distribute.MirroredStrategy` over the visible GPUs
  when there are two or more, else TensorFlow's default strategy (one device).
- `none`: the default strategy.
- `mirrored`: `MirroredStrategy` over every GPU, or, without GPUs, over the
  logical CPU devices (one unless `KERASFLOW_LOGICAL_CPUS` splits the CPU,
  which is how a strategy is tried without GPUs).
- `multi_worker`: `MultiWorkerMirroredStrategy`, which reads the cluster
  from the `TF_CONFIG` environment variable of each worker (see
  docs/scaling.md).

The model, with its preprocessing layers, is built and compiled under the
strategy's scope; Keras then distributes `fit` over the replicas, each batch
split between them.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


def distribution_strategy(mode: str) -> Any | None:
    """Returns the `tf.distribute` strategy `training.distribute` asks for, or None for the default one.

    Args:
        mode: `auto`, `none`, `mirrored` or `multi_worker`.

    Returns:
        A strategy, or None.

    Example:

    ```python
    strategy = distribution_strategy("mirrored")  # MirroredStrategy over the GPUs (or logical CPUs)
    ```
    """
    import tensorflow as tf

    if mode == "none":
        return None
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if mode == "auto":
        return tf.distribute.MirroredStrategy(devices=gpus) if len(gpus) > 1 else None
    if mode == "mirrored":
        return tf.distribute.MirroredStrategy(
            devices=gpus or [device.name for device in tf.config.list_logical_devices("CPU")])
    return tf.distribute.MultiWorkerMirroredStrategy()


@contextlib.contextmanager
def distribution_scope(mode: str) -> Iterator[Any | None]:
    """Opens the scope of the strategy `training.distribute` asks for (nothing for the default one).

    Args:
        mode: `auto`, `none`, `mirrored` or `multi_worker`.

    Yields:
        The strategy, or None.
    """
    strategy = distribution_strategy(mode)
    if strategy is None:
        yield None
        return
    with strategy.scope():
        yield strategy
