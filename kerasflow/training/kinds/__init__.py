"""Data kinds: table, stream and images, each one implementation of `DataKind` (see `base.py`)."""

from kerasflow.training.baseline import Baseline
from kerasflow.training.kinds.base import DataKind, FileCheck, Fitted, Inferred, StepLog, kind_of, register

__all__ = ["Baseline", "DataKind", "FileCheck", "Fitted", "Inferred", "StepLog", "kind_of", "register"]
