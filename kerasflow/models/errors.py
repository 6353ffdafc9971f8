"""Errors of the model families that code outside `kerasflow.models` raises or catches too."""

from __future__ import annotations

from kerasflow.errors import BadInputError


class BaseModelError(BadInputError):
    """A pretrained base model that cannot be found, loaded or fitted to the data."""

    label = "bad base model"
