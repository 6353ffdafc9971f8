"""Deferred imports of heavy libraries: TensorFlow (its banners filtered, with the CPU split) and the light prefetch.

TensorFlow stays off the paths that do not train (`kerasflow --help`,
config errors, data that fails validation); the steps that need it call
`import_tensorflow` first.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any, Iterator

from kerasflow.progress import status
from kerasflow.quiet import filtered_stderr, silence


def import_tensorflow() -> None:
    """Imports TensorFlow once, dropping its import banners from native stderr.

    TensorFlow's C++ runtime prints CUDA-probe and absl banners straight to
    file descriptor 2 during import, past any Python logging setting. Only
    those lines are dropped (`kerasflow.quiet.filtered_stderr`): a flow's
    other tasks run in threads meanwhile (the baseline's fit beside the
    training's import), and what they write to fd 2, their Prefect log lines
    among them, still reaches the terminal. (Muting all of fd 2 lost those
    lines, and the heartbeat, counting them as output, stayed silent.)
    """
    if "tensorflow" in sys.modules:
        return
    with _IMPORTING:  # one thread at a time
        if "tensorflow" in sys.modules:  # another thread imported it meanwhile
            return
        silence()
        with status("importing TensorFlow"), tensorflow_banners_dropped():
            import keras  # noqa: F401
            import tensorflow

        split_cpu(tensorflow)


_IMPORTING = threading.Lock()


@contextlib.contextmanager
def tensorflow_banners_dropped() -> Iterator[None]:
    """Drops TensorFlow's native banner lines on fd 2 for the block; every other line passes.

    For the steps where TensorFlow's C++ runtime may print (its import,
    building a pretrained Keras application from a weights file). Other
    threads' lines still reach the terminal (see `import_tensorflow`). One
    block at a time: two interleaved swaps of fd 2 would leave it filtered
    for good.
    """
    with _SWAPPING, filtered_stderr(_banner):
        yield


_SWAPPING = threading.Lock()


LOGICAL_CPUS_ENV = "KERASFLOW_LOGICAL_CPUS"
_BANNERS = (b"absl::InitializeLog", b"cuda", b"TensorFlow binary is optimized", b"oneDNN custom operations",
            b"To enable the following instructions")  # the CPU-feature banner's second line


def _banner(line: bytes) -> bool:
    """Whether a line on fd 2 is one of TensorFlow's import banners (absl's `I0000 ...` lines, CUDA probes)."""
    return line[:1] in b"IWE" and line[1:5].isdigit() or any(mark in line for mark in _BANNERS)


def split_cpu(tf: Any) -> None:
    """Splits the CPU into `KERASFLOW_LOGICAL_CPUS` logical devices, if set (before TensorFlow initializes).

    With two or more, `training.distribute: mirrored` trains one replica per
    logical CPU: how a distribution strategy is tried on a machine without
    GPUs (TensorFlow's own recipe, `tf.config.set_logical_device_configuration`).

    Raises:
        ValueError: The variable is not a positive integer.
    """
    raw = os.environ.get(LOGICAL_CPUS_ENV, "").strip()
    if not raw:
        return
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{LOGICAL_CPUS_ENV}={raw!r}: use a positive integer (the logical CPU devices)")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(int(raw))])


def prefetch_light() -> None:
    """Loads what later steps need that is heavy on CPU but light on memory.

    Meant for time this process would otherwise spend waiting (the
    validation worker's job, see `kerasflow.data.expectations.run.run_validation`):
    matplotlib for the plots, and scikit-learn's splitters and metrics. TensorFlow is
    not imported here, to keep it out of memory until validation is done.
    It also counts the physical cores once (joblib caches it): scikit-learn's
    boosting asks at its first fit, and joblib runs `lscpu` for it, a child
    process that starts as a copy of this one (at a million rows the
    baseline's process holds 1.8 GB, which a memory sampler then counts twice).
    Any failure is ignored: a cold cache only costs time later.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        import sklearn.metrics  # noqa: F401
        import sklearn.model_selection  # noqa: F401
        from joblib import cpu_count

        cpu_count(only_physical_cores=True)
    except Exception:
        return


def release_memory() -> None:
    """Hands the memory a finished step freed back to the system, so later processes and steps have it.

    PyArrow allocates the rows `pandas.read_parquet` reads from a pool of its
    own that keeps freed memory for later allocations: after a step that
    read the raw rows, a few hundred MB at a million rows stay in this
    process's resident memory beside TensorFlow's, and beside the fresh
    process of infra validation. `MemoryPool.release_unused` returns them.
    Nothing is imported: a process that never read Parquet has nothing to release.
    """
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:  # (no `gc.collect()`: a frame is freed when its last reference goes, and a full
        pyarrow.default_memory_pool().release_unused()  # collection with TensorFlow loaded costs a few 100 ms)
