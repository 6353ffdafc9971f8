"""Variants of the tabular probe's networks, named by options after a `~` (see `tabular_probe.py`).

A probe model name such as `def_ple~wd1e-4~lr3e-4~p40` is the network
`def_ple` with these changes (each option a prefix and a value):

- `lr<float>`: the learning rate (default 1e-3; TabM's 2e-3);
- `wd<float>`: AdamW with this weight decay instead of Adam;
- `p<int>`: the early-stopping patience (the learning-rate schedule's stays 8 unless `rp<int>`);
- `rp<int>`: the learning-rate schedule's patience;
- `b<int>`: a fixed batch size;
- `w<int>`, `d<int>`, `do<float>`: the hidden width, the number of hidden layers, the dropout;
- `nb<int>`: the number of piecewise-linear bins (default 48);
- `x<int>`: the mean of this many networks trained with different seeds;
- `bal`: class weights inversely proportional to the class counts;
- `bn`: batch normalization after each hidden layer;
- `k<int>`: TabM's ensemble size;
- `mc<int>`: drop the categorical columns with more than this many levels;
- `ls<float>`: label smoothing of the classification loss;
- `gn<float>`: Gaussian noise of this standard deviation on the standardized numbers while training;
- `rt<int>`: this many totally random trees of depth 5 on the numbers (scikit-learn's
  `RandomTreesEmbedding`, fitted on the training rows), their leaves one-hot beside the categoricals;
- `rf<int>`: the same with a random forest of this many trees fitted on the training labels (leaves of at
  least 3 rows);
- `wide`: the random trees' leaves feed a linear layer whose logits add to the network's (wide and deep),
  instead of the network's input;
- `ce<int>`: embed the categorical columns with more than this many levels (dense kinds), as
  `preprocessing.categorical_embedding: {above: N}` does.

Plain parsing, no Keras at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLOATS = ("lr", "wd", "do", "ls", "gn")
INTS = ("rp", "p", "b", "w", "d", "nb", "x", "k", "mc", "ce", "rt", "rf")


@dataclass(frozen=True)
class Variant:
    """A probe network kind and its option overrides (`values` maps an option to its value)."""

    kind: str
    values: dict = field(default_factory=dict)

    def get(self, option: str, default):
        """The option's value, or `default` when the name does not set it."""
        return self.values.get(option, default)


def parse(name: str) -> Variant:
    """Splits `base~opt~opt` into the base kind and its options.

    Raises:
        ValueError: An option the probe does not know.
    """
    base, *options = name.split("~")
    values: dict = {}
    for option in options:
        if option in ("bal", "bn", "wide"):
            values[option] = True
            continue
        for prefix in FLOATS + INTS:  # "do" before "d", "rp" before "p": longest prefixes are listed first
            if option.startswith(prefix) and _number(option[len(prefix):]):
                values[prefix] = float(option[len(prefix):]) if prefix in FLOATS else int(option[len(prefix):])
                break
        else:
            raise ValueError(f"unknown probe option {option!r} in {name!r}")
    return Variant(base, values)


def class_weights(labels, classes: int) -> dict[int, float]:
    """Balanced class weights (`n / (classes * count)`), as scikit-learn's `class_weight='balanced'`."""
    import numpy as np

    counts = np.bincount(labels, minlength=classes).astype(float)
    return {i: float(len(labels) / (classes * max(count, 1.0))) for i, count in enumerate(counts)}


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
