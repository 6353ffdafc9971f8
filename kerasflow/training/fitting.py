"""Fits a compiled model with early stopping and learning-rate schedules."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kerasflow.schemas.config import TrainingConfig
from kerasflow.training.encoded import encode_rows, split_encoder
from kerasflow.training.image_stream import fit_arguments, is_streamed, validation_data
from kerasflow.training.plots import pyplot, save_figure
from kerasflow.training.resume import resume_callback

EpochHook = Callable[[int, dict[str, float]], None]


@dataclass
class TrainingResult:
    """What a fit produced.

    Args:
        history: Per-epoch values of every metric, by name.
        epochs_run: Epochs actually run (early stopping may cut them).
        best_epoch: 1-based epoch of the best monitored value.
        replicas: Devices the fit ran on in sync (`training.distribute`). Default 1.
    """

    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    replicas: int = 1


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and the Keras backend for reproducible runs.

    Args:
        seed: The seed from the config.
    """
    import keras

    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    keras.utils.set_random_seed(seed)


def build_callbacks(cfg: TrainingConfig, on_epoch: EpochHook | None = None, has_val: bool = True) -> list[Any]:
    """Creates the callbacks a config asks for.

    Args:
        cfg: The `training` section.
        on_epoch: Called with `(epoch, logs)` after each epoch, e.g. to log
            metrics once each. Default none.
        has_val: Whether validation data exist; without them, monitors on
            `val_*` fall back to the training metric. Default true.

    Returns:
        A list of `keras.callbacks.Callback`.
    """
    import keras

    callbacks: list[Any] = [data_loss_callback()]  # first: the monitors below may watch `val_data_loss`
    es, rl = cfg.early_stopping, cfg.reduce_lr
    if es.enabled:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=_monitor(es.monitor, has_val), patience=es.patience, min_delta=es.min_delta,
            restore_best_weights=es.restore_best_weights, mode="auto"))
    if rl.enabled:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=_monitor(rl.monitor, has_val), factor=rl.factor, patience=rl.patience, min_lr=rl.min_lr))
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(epoch, {k: float(v) for k, v in (logs or {}).items()})))
    return callbacks


DATA_LOSS = "val_data_loss"


def data_loss_callback() -> Any:
    """A callback that adds `val_data_loss` to every epoch's logs: the validation loss without the weight penalty.

    Keras reports `val_loss` as the compiled loss on the validation rows
    plus the model's penalty losses (`model.losses`: the `l1`/`l2` kernel
    regularizers, computed from the weights the validation rows were
    scored with). Two models with different penalties are compared on
    their predictions by `val_data_loss` = `val_loss` - penalty, the
    search's default objective. Without a penalty the two are equal.

    Returns:
        A `keras.callbacks.Callback`, to run before any callback that monitors `val_data_loss`.

    Example:

    ```python
    model.fit(x, y, validation_data=(xv, yv), callbacks=[data_loss_callback()])
    history.history["val_data_loss"]  # = val_loss without the l2 term
    ```
    """
    import keras

    class DataLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is not None and "val_loss" in logs:
                logs[DATA_LOSS] = float(logs["val_loss"]) - penalty(self.model)

    return DataLoss()


def penalty(model: Any) -> float:
    """The model's penalty losses (`model.losses`: its weight regularizers) at its current weights."""
    import keras

    return float(sum(float(keras.ops.convert_to_numpy(keras.ops.sum(loss))) for loss in model.losses))


def without_early_stopping(cfg: TrainingConfig) -> TrainingConfig:
    """Returns a copy of the `training` section with early stopping and learning-rate reduction off.

    A fit without validation rows (e.g. a refit on all non-test rows) runs
    its epochs in full.

    Args:
        cfg: The `training` section.

    Returns:
        The modified copy.
    """
    copy = cfg.model_copy(deep=True)
    copy.early_stopping.enabled = False
    copy.reduce_lr.enabled = False
    return copy


def fit_model(
    model: Any,
    x_train: dict[str, np.ndarray],
    y_train: np.ndarray,
    cfg: TrainingConfig,
    *,
    validation: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    epochs: int | None = None,
    on_epoch: EpochHook | None = None,
    checkpoint: str | Path | None = None,
) -> TrainingResult:
    """Trains a compiled model.

    Args:
        model: A compiled `keras.Model`.
        x_train: Named training inputs, or `StreamedImages` (image files
            read from disk by `tf.data`, `kerasflow.training.image_stream`).
        y_train: Encoded training labels.
        cfg: The `training` section.
        validation: `(x_val, y_val)`, or None to train without.
        epochs: Overrides `cfg.epochs` (e.g. a refit for the best epoch count).
        on_epoch: Per-epoch hook. Default none.
        checkpoint: A persistent folder to checkpoint into at epoch ends
            (at most every `KERASFLOW_CHECKPOINT_SECONDS`, see
            `kerasflow.training.resume`); a fit whose folder holds a
            checkpoint continues at its last checkpointed epoch, and the
            history covers every epoch. Default none.

    Returns:
        A `TrainingResult`.
    """
    callbacks = build_callbacks(cfg, on_epoch, has_val=validation is not None)
    resume = None
    if checkpoint is not None:
        resume = resume_callback(checkpoint, list(callbacks))
        callbacks.append(resume)  # last: saves once the others have run, restores their counters
    split = None if is_streamed(x_train) else split_encoder(model)
    if split is not None:  # fixed preprocessing (`training.encoded`): encode the rows once, train the layers after it
        model = split.core
        data = {"x": encode_rows(split, x_train), "y": y_train, "batch_size": cfg.batch_size, "shuffle": True}
        val_data = None if validation is None else (encode_rows(split, validation[0]), validation[1])
    else:  # arrays, or image files streamed from disk as a dataset (`image_stream`)
        data = fit_arguments(x_train, y_train, cfg.batch_size)
        val_data = validation_data(validation, cfg.batch_size)
    history = model.fit(**data, validation_data=val_data, epochs=epochs or cfg.epochs, callbacks=callbacks,
                        verbose=0).history
    history = {k: [float(v) for v in vals] for k, vals in (resume.history if resume else history).items()}
    monitor = _monitor(cfg.early_stopping.monitor, validation is not None)
    return TrainingResult(history=history, epochs_run=len(next(iter(history.values()), [])),
                          best_epoch=best_epoch(history, monitor))


def best_epoch(history: dict[str, list[float]], monitor: str) -> int:
    """Returns the 1-based epoch at which `monitor` was best.

    Args:
        history: Per-epoch metric values.
        monitor: Metric name; losses and errors are minimized, others maximized.

    Returns:
        The best epoch, or the last one if `monitor` is absent.
    """
    values = history.get(monitor)
    if not values:
        return len(next(iter(history.values()), [0]))
    pick = np.argmin if _minimized(monitor) else np.argmax
    return int(pick(values)) + 1


def plot_history(history: dict[str, list[float]], path: str | Path) -> Path:
    """Saves learning curves, one panel per metric with its validation twin.

    Args:
        history: Per-epoch metric values.
        path: PNG path to write.

    Returns:
        The path written.
    """
    plt = pyplot()
    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(range(1, len(history[name]) + 1), history[name], label=f"train {name}")
        if f"val_{name}" in history:
            ax.plot(range(1, len(history[f"val_{name}"]) + 1), history[f"val_{name}"], label=f"val {name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    return save_figure(fig, path)


def _monitor(name: str, has_val: bool) -> str:
    return name if has_val or not name.startswith("val_") else name.removeprefix("val_")


def _minimized(name: str) -> bool:
    return any(token in name for token in ("loss", "error", "mae", "mse"))
