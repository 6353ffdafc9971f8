"""The one base class for "bad input".

Every domain error that a user fixes by changing their config, data, suite
or model reference subclasses `BadInputError` and names itself with a short
`label`: exit status 2 rather than a crash. The CLI, the retry conditions
and the failure recorder test for this one class, so a new error never
needs to be listed anywhere else.

How an interrupt (Ctrl-C, SIGTERM) is recognized and what it does to runs
is `kerasflow.stopping`'s. This module imports nothing of ours: every layer
may use it.
"""

from __future__ import annotations

__all__ = ["BadInputError", "describe"]


class BadInputError(ValueError):
    """Input the user must fix; retrying cannot help.

    Subclasses set `label`, the short phrase that `describe` puts first.

    Example:

    ```python
    class SplitError(BadInputError):
        label = "cannot split the data"
    ```
    """

    label = "bad input"


def describe(exc: BaseException) -> str:
    """Returns a readable one-paragraph description of a bad-input error.

    Args:
        exc: Any exception; a `BadInputError` is prefixed with its label.

    Returns:
        `"<label>: <message>"`, or the class name and message otherwise.
    """
    label = exc.label if isinstance(exc, BadInputError) else type(exc).__name__
    return f"{label}: {exc}"
