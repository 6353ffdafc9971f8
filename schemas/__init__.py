"""The config models. Families that register their own section are imported here, one line each."""

from kerasflow.schemas import tabm  # noqa: F401  (registers model.kind tabm)
