"""Credentials in addresses: masked wherever kerasflow prints, logs or records one.

`http://user:pass@host` and `postgresql://user:pass@host/db` are written
`http://user:***@host` in every message, log line, tag and param
(`mask`); `credentials` splits them off an address for a client that sends
them itself. This module imports nothing of ours: every layer may use it.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from typing import Any

__all__ = ["credentials", "install_log_masking", "mask"]

MASK = "***"
# scheme://user:password@ : the password runs to the last `@` before the host (no `/`, whitespace or quote)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@'\"<>]*):(?P<secret>[^/\s'\"<>]*)@")


def mask(text: Any) -> str:
    """Returns `text` (any object, as `str`) with the password of every address in it replaced by `***`.

    Args:
        text: A message, an address, a param value.

    Returns:
        The text, `scheme://user:***@host...` for each address with a password.

    Example:

    ```python
    mask("cannot reach postgresql://kf:s3cret@db:5432/mlflow")
    # 'cannot reach postgresql://kf:***@db:5432/mlflow'
    ```
    """
    text = text if isinstance(text, str) else str(text)
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", text)


def credentials(uri: str) -> tuple[str, tuple[str, str] | None]:
    """Splits the user and password off an address.

    Args:
        uri: An address, e.g. `http://user:pass@host:5000/path`.

    Returns:
        `(the address without them, (user, password))`, or `(uri, None)`
        when it names no user.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None:
        return uri, None
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    bare = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))


_installed = False


def install_log_masking() -> None:
    """Masks credentials in every log record this process makes, message and traceback (once per process).

    A record factory (`logging.setLogRecordFactory`) renders the message of
    each record whose text holds an address with a password, and its
    traceback, masked, before any handler formats it.
    """
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the handler's to report
            return record
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None and "@" in str(record.exc_info[1]):
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
