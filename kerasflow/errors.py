"""The errors that mean "bad input" (exit status 2) rather than a crash."""

from __future__ import annotations

from schemas.config import ConfigError
from tasks.cnn import BaseModelError
from tasks.drift import DriftError
from tasks.images import ImageDataError
from tasks.load import DataLoadError
from tasks.predict import ModelReferenceError
from tasks.preprocess import FeatureError
from tasks.promote import PromotionError
from tasks.split import SplitError
from tasks.tune import TuningError
from tasks.validate import DataValidationError, SuiteError

BAD_INPUT_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, DataLoadError, DataValidationError, SuiteError, FeatureError, SplitError, TuningError,
    DriftError, ModelReferenceError, PromotionError, ImageDataError, BaseModelError,
)


def describe(exc: BaseException) -> str:
    """Returns a readable one-paragraph description of a bad-input error."""
    kind = {
        ConfigError: "bad config",
        DataLoadError: "bad data file",
        DataValidationError: "data failed its expectations",
        SuiteError: "bad expectation suite",
        FeatureError: "bad features",
        SplitError: "cannot split the data",
        TuningError: "cannot tune",
        DriftError: "new data drifted from the champion's training data",
        ModelReferenceError: "bad model reference",
        PromotionError: "cannot move the champion",
        ImageDataError: "bad image data",
        BaseModelError: "bad base model",
    }
    label = next((text for cls, text in kind.items() if isinstance(exc, cls)), type(exc).__name__)
    return f"{label}: {exc}"
