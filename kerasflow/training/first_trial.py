"""The `random` search's oracle: its first trial is the configured values, the rest are random.

Keras Tuner's random search never tries the hyperparameter defaults, so a
short search could return a model worse than the untuned config. Every
searched parameter is declared with the config's value as its default
(`kerasflow.training.search.declare_space`), and this oracle hands those
defaults out as trial 0, so the search's best validation score is at
least that of the configured values. `oracle_seed` is the seed every
oracle of a search gets from `tuning.seed`.
"""

from __future__ import annotations

import functools
from typing import Any


def configured_values(space: Any) -> dict[str, Any]:
    """Returns the default value of every active hyperparameter of a search space.

    Parameters are taken in declaration order (parents first), so a
    conditional parameter is included only when its parents' defaults
    activate it, as Keras Tuner expects of a trial's values.

    Args:
        space: A `keras_tuner.HyperParameters` with the declared space.

    Returns:
        `{name: default}` of the active parameters.
    """
    import keras_tuner  # deferred: Keras Tuner loads TensorFlow

    values = keras_tuner.HyperParameters()
    values.merge(space)  # registers each parameter with its default, if its conditions hold
    return dict(values.values)


def oracle_seed(seed: int) -> int:
    """The seed a Keras Tuner oracle gets for `tuning.seed`: `seed + 1` (from 0), so that a seed of 0 seeds it too.

    Keras Tuner's `Oracle` takes a falsy seed as none and draws a random
    one (`seed or random.randint(1, 10000)`), so `tuning.seed: 0` would
    give a different search on every run. Shifting every seed by one keeps
    distinct seeds distinct and every search reproducible (a negative seed
    is passed as it is: it is not falsy). The seeds of
    the trials' training (weights, shuffling) stay `tuning.seed` itself.

    Args:
        seed: `tuning.seed`.

    Returns:
        The oracle's seed, never 0 for a seed of 0 or more.

    Example:

    >>> oracle_seed(0)
    1
    """
    return seed + 1 if seed >= 0 else seed


def configured_first_oracle(**kwargs: Any) -> Any:
    """Creates a random-search oracle whose first trial is the configured values.

    Trial 0 takes every searched hyperparameter's default, which
    `declare_space` sets to the value the config would use without tuning.
    Where that value cannot be drawn (a number outside the parameter's
    `[min, max]`, a value not among its `choice` values), the
    hyperparameter's own default stands in for it: `min`, or the first
    choice; a parameter shared by several layers (`model.units`) takes the
    first layer's value. Conditional parameters appear only when their
    parents' values activate them. Every later trial is random, as with
    `keras_tuner.RandomSearch`, and never repeats trial 0's values. A
    resumed search that already has trial 0 (finished, or interrupted and
    retried by Keras Tuner) does not create it again.

    Args:
        **kwargs: Arguments of `keras_tuner.oracles.RandomSearchOracle`
            (`objective`, `max_trials`, `seed`, ...).

    Returns:
        The oracle.
    """
    return _oracle_class()(**kwargs)


@functools.cache
def _oracle_class() -> type:
    import keras_tuner  # deferred: Keras Tuner loads TensorFlow

    class ConfiguredFirstOracle(keras_tuner.oracles.RandomSearchOracle):
        """A `RandomSearchOracle` whose first trial is the search space's defaults (the configured values)."""

        def populate_space(self, trial_id: str) -> dict[str, Any]:
            if not self.trials:  # no trial created yet, in this process or in the saved state
                return {"status": "RUNNING", "values": configured_values(self.get_space())}
            return super().populate_space(trial_id)

    return ConfiguredFirstOracle
