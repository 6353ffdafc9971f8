"""Model families and `build_model(hp, spec)`, the one builder for the tuner and the final fit.

`kerasflow.models.families` finds the family of `spec.model.kind`; each
family module registers itself when imported, so every family is imported
here, one line each. None of them imports TensorFlow at import time: Keras
is imported inside the builders.
"""

from kerasflow.models import (
    cnn,  # noqa: F401  (registers model.kind cnn)
    dense,  # noqa: F401  (registers model.kind dense)
    functional,  # noqa: F401  (registers model.kind functional)
    tabm,  # noqa: F401  (registers model.kind tabm)
    text,  # noqa: F401  (registers model.kind text)
)
