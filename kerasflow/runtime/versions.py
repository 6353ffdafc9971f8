"""What `kerasflow --version` prints: kerasflow's version and those of the libraries it runs on."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

# (shown name, distributions to try): read from the installed metadata, never imported, so that
# `kerasflow --version` stays as fast as `--help` (TensorFlow and Great Expectations take seconds to import)
LIBRARIES = (("Prefect", ("prefect",)), ("MLflow", ("mlflow", "mlflow-skinny")),
             ("TensorFlow", ("tensorflow", "tensorflow-cpu", "tensorflow-macos")), ("Keras", ("keras",)),
             ("Great Expectations", ("great-expectations",)))


def installed_version(*distributions: str) -> str | None:
    """The version of the first of `distributions` that is installed, or None."""
    for name in distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def version_lines() -> list[str]:
    """`kerasflow <version>`, then one `<library> <version>` line per library, then Python's.

    Returns:
        The lines, a library that is not installed shown as `not installed`.
    """
    from kerasflow import __version__

    lines = [f"kerasflow {__version__}"]
    lines += [f"{shown} {installed_version(*names) or 'not installed'}" for shown, names in LIBRARIES]
    return [*lines, f"Python {platform.python_version()}"]
