"""Data kinds: table, stream and images, each one implementation of `DataKind` (see `base.py`)."""

from kerasflow.training.kinds.base import DataKind, FileCheck, Fitted, Inferred, StepLog, kind_of, register

__all__ = ["DataKind", "FileCheck", "Fitted", "Inferred", "StepLog", "kind_of", "register"]
