"""Design lint: rules of thumb of Keras model design, checked against a config and its data before any training.

Each rule looks at the validated config and a `DataProfile` and yields
findings. A finding has a severity (`error` stops `kerasflow run`,
`warning` and `note` are reported), the config path it concerns, the rule's
id, a message with the observed and the expected value, and where the rule
is explained: `docs/rules.md#<rule id>` (what it checks, why, how to fix).
A new rule gets its section there (`tests/test_lint.py` checks that each
has one).

Rules check the values a config fixes; values a tuning search chooses are
checked by the search itself. This module imports neither Prefect, MLflow
nor TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from kerasflow.errors import BadInputError
from kerasflow.lint.profile import DataProfile
from kerasflow.models.families import WeightPenalty, family_of, fine_tuning, text_section
from kerasflow.schemas.config import InitializerConfig, ModelSection, PipelineConfig

SEVERITIES = ("error", "warning", "note")
SMALL_DATA_ROWS = 1000  # below this many training rows, k-fold gives a steadier estimate (docs/rules.md#small-data-without-kfold)
SMALL_TEXT_ROWS = 10_000
MANY_EPOCHS = 50
HIGH_DROPOUT = 0.6
RANGE_RATIO = 100.0  # feature spreads differing by this factor or more need standardizing (docs/rules.md#unscaled-features)
VOCABULARY_RATIO = 2.0
LEARNING_RATES = {  # a sane range per optimizer: outside it training diverges or crawls (docs/rules.md#learning-rate)
    "adam": (1e-5, 3e-2), "adamw": (1e-5, 3e-2), "nadam": (1e-5, 3e-2), "rmsprop": (1e-5, 3e-2),
    "sgd": (1e-4, 0.5), "adagrad": (1e-3, 1.0),
}
RECURRENT = ("simple_rnn", "lstm", "gru")
RULES_DOC = "docs/rules.md"  # each rule's explanation, under a heading named by its id


@dataclass(frozen=True)
class Finding:
    """One design problem.

    Args:
        severity: `error`, `warning` or `note`.
        path: The config path it concerns, e.g. `model.hidden_units[1]`.
        rule: The rule's id, e.g. `bottleneck`.
        message: What was observed, what is expected, and the fix.
        source: Where the rule is explained. Default `docs/rules.md#<rule>`.
    """

    severity: str
    path: str
    rule: str
    message: str
    source: str = ""

    def __post_init__(self) -> None:
        if not self.source:
            object.__setattr__(self, "source", f"{RULES_DOC}#{self.rule}")  # frozen: set once, here

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message} [{self.source}]"


@dataclass
class LintReport:
    """The findings of one lint, most severe first."""

    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        """The findings that stop a run."""
        return [f for f in self.findings if f.severity == "error"]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (`lint/report.json`)."""
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
        return {"counts": counts, "findings": [asdict(f) for f in self.findings]}

    def summary(self) -> str:
        """The report as readable text, one finding per line."""
        if not self.findings:
            return "design lint: no findings"
        counts = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s in SEVERITIES
                           if (n := sum(f.severity == s for f in self.findings)))
        return "\n".join([f"design lint: {counts}", *(f"  {f}" for f in self.findings)])


class DesignLintError(BadInputError):
    """The config breaks a design rule marked `error`; nothing was trained."""

    label = "design lint failed"

    def __init__(self, config_file: str, report: LintReport):
        lines = [f"  {f}" for f in report.errors]
        super().__init__(f"{config_file} breaks {len(report.errors)} design rule(s):\n" + "\n".join(lines)
                         + "\nFix the config (each line names the key), or run with --no-lint to train anyway.")
        self.report = report


Rule = Callable[[PipelineConfig, DataProfile], Iterator[Finding]]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    """Registers a rule under `name`."""

    def register(check: Rule) -> Rule:
        RULES[name] = check
        return check

    return register


def lint_config(config: PipelineConfig, profile: DataProfile) -> LintReport:
    """Checks a config against the design rules of thumb (`docs/rules.md`).

    Args:
        config: The validated `PipelineConfig`.
        profile: The data's profile (`kerasflow.lint.profile.profile_frame`).

    Returns:
        The `LintReport`, errors first.

    Example:

    ```python
    report = lint_config(config, profile_frame(config, frame))
    print(report.summary())
    ```
    """
    findings = [finding for check in RULES.values() for finding in check(config, profile)]
    return LintReport(sorted(findings, key=lambda f: SEVERITIES.index(f.severity)))


def _hidden_layers(model: ModelSection) -> list[tuple[str, int]]:
    """The hidden Dense widths a `model` section fixes, with their config paths."""
    return family_of(model).hidden_layers(model)


@rule("bottleneck")
def check_bottleneck(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """A hidden layer narrower than the number of classes loses information the output needs."""
    if profile.task != "classification" or profile.classes < 3:
        return
    for path, units in _hidden_layers(config.model):
        if units < profile.classes:
            yield Finding("warning", path, "bottleneck",
                          f"{units} units, narrower than the {profile.classes} classes it must separate: an "
                          f"information bottleneck; use at least {profile.classes} (e.g. {2 * profile.classes})")


@rule("task-and-labels")
def check_task_and_labels(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """The task, and so the output activation and loss, must fit the label values."""
    path = "data.task"
    if profile.task == "regression" and not profile.target_numeric:
        yield Finding("error", path, "task-and-labels",
                      "regression on a target that is not numeric: a linear output and mse loss need numbers; "
                      "set data.task: classification")
    continuous = profile.target_numeric and profile.target_distinct > 20 and (
        not profile.target_integer or profile.target_distinct > 50)
    if profile.task == "classification" and continuous:
        kind = "whole-number" if profile.target_integer else "decimal"
        yield Finding("error", path, "task-and-labels",
                      f"classification on a quantity ({profile.target_distinct} distinct {kind} values): each "
                      "value would become a class; set data.task: regression")
    elif config.data.task == "auto" and profile.task == "classification" and profile.target_integer \
            and profile.classes > 10:
        yield Finding("warning", path, "task-and-labels",
                      f"the target's {profile.classes} whole numbers are treated as {profile.classes} unordered "
                      "classes (softmax, crossentropy); if they are quantities (counts, ratings, ages) set "
                      "data.task: regression")
    objective = config.tuning.objective.name if config.tuning else None
    if objective and profile.task == "regression" and "acc" in objective:
        yield Finding("error", "tuning.objective.name", "task-and-labels",
                      f"'{objective}' is a classification metric, but the task is regression; use val_loss or "
                      "val_mae")


@rule("unscaled-features")
def check_unscaled_features(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """Features whose spreads differ by orders of magnitude need standardizing."""
    if config.preprocessing.normalize != "none" or len(profile.numeric_std) < 2:
        return
    widest = max(profile.numeric_std, key=profile.numeric_std.get)
    narrowest = min(profile.numeric_std, key=profile.numeric_std.get)
    ratio = profile.numeric_std[widest] / profile.numeric_std[narrowest]
    if ratio >= RANGE_RATIO:
        yield Finding("warning", "preprocessing.normalize", "unscaled-features",
                      f"normalization is off, but feature spreads differ {ratio:,.0f}-fold ('{widest}' std "
                      f"{profile.numeric_std[widest]:.4g}, '{narrowest}' std {profile.numeric_std[narrowest]:.4g}); "
                      "set preprocessing.normalize: standard (or quantile)")


@rule("small-data-without-kfold")
def check_small_data(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """With little data a single validation split is noisy; k-fold gives a steadier estimate."""
    if config.split.kind == "holdout" and 0 < profile.train_rows < SMALL_DATA_ROWS:
        yield Finding("note", "split.kind", "small-data-without-kfold",
                      f"about {profile.train_rows} training rows with a single validation split: its score is "
                      "noisy; split.kind: kfold (e.g. folds: 5) scores every row once")


@rule("no-early-stopping")
def check_early_stopping(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """Many epochs without early stopping overfit and waste time."""
    training = config.training
    if training.epochs >= MANY_EPOCHS and not training.early_stopping.enabled:
        yield Finding("warning", "training.early_stopping.enabled", "no-early-stopping",
                      f"{training.epochs} epochs with early stopping off: training runs past the best epoch "
                      "and overfits; enable it (with restore_best_weights)")


@rule("held-out-rows")
def check_held_out_rows(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """Scores must come from rows the model (and the search) never saw, drawn from shuffled data."""
    split = config.split
    if split.test_fraction == 0 and config.data.test_source is None:
        yield Finding("error", "split.test_fraction", "held-out-rows",
                      "0: no test rows are held out, so the test scores would come from rows used in training; "
                      "set split.test_fraction (e.g. 0.2) or data.test_source")
    if config.data.test_source is not None and _same_file(config.data.test_source, config.data.source):
        yield Finding("error", "data.test_source", "held-out-rows",
                      f"'{config.data.test_source}' is the training source itself: every test row is also a "
                      "training row; point it at held-out data, or remove it to split test rows off")
    if not split.shuffle and config.data.test_source is None:
        severity = "error" if profile.target_sorted else "warning"
        why = "the rows are sorted by the target, so the splits would hold different labels" \
            if profile.target_sorted else "rows in file order may not be representative"
        yield Finding(severity, "split.shuffle", "held-out-rows",
                      f"false: {why}; set split.shuffle: true")


@rule("unused-test-fraction")
def check_unused_test_fraction(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """A test file (`data.test_source`) is the test set: a `split.test_fraction` set beside it is ignored."""
    split = config.split
    if config.data.test_source is not None and "test_fraction" in split.model_fields_set and split.test_fraction > 0:
        yield Finding("warning", "split.test_fraction", "unused-test-fraction",
                      f"{split.test_fraction:g} is ignored: data.test_source ('{config.data.test_source}') is the "
                      "test set, and no test rows are split off data.source; remove split.test_fraction, or remove "
                      "data.test_source to split test rows off")


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return False


def _dropouts(model: ModelSection) -> list[tuple[str, float]]:
    return family_of(model).dropouts(model)


@rule("strong-regularization")
def check_regularization(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """Dropout of 0.6 or more, or a weight penalty larger than the loss at initialization, stops learning."""
    for path, rate in _dropouts(config.model):
        if rate >= HIGH_DROPOUT:
            yield Finding("warning", path, "strong-regularization",
                          f"{rate}: dropping {rate:.0%} of the features leaves too little signal to learn from; "
                          "use 0.1-0.5")
    weights = family_of(config.model).weight_penalty(config.model)
    penalty = _initial_penalty(weights, profile)
    loss = math.log(max(profile.classes, 2)) if profile.task == "classification" else profile.target_mean_square
    if penalty is not None and loss > 0 and penalty > loss:
        yield Finding("warning", "model.l2" if weights.l2 else "model.l1", "strong-regularization",
                      f"l1={weights.l1}, l2={weights.l2} give a weight penalty of about {penalty:.3g} at "
                      f"initialization, more than the data loss (about {loss:.3g}): the model learns to shrink "
                      "weights, not to fit; "
                      "use a strength 10-100x smaller (1e-4 to 1e-3 is typical)")


def _initial_penalty(model: WeightPenalty | None, profile: DataProfile) -> float | None:
    """The L1/L2 penalty of a model's initial hidden kernels (expected value), None if not applicable."""
    if model is None or not (model.l1 or model.l2) or not profile.input_width:
        return None
    widths = [profile.input_width, *model.hidden_units]
    total = 0.0
    for fan_in, fan_out in zip(widths, widths[1:]):
        variance = _init_variance(model.initializer, fan_in, fan_out)
        total += fan_in * fan_out * (model.l2 * variance + model.l1 * 0.8 * math.sqrt(variance))
    return total


def _init_variance(initializer: InitializerConfig, fan_in: int, fan_out: int) -> float:
    name = initializer.name
    if name.startswith("glorot"):
        return 2.0 / (fan_in + fan_out)
    if name.startswith("he"):
        return 2.0 / fan_in
    if name.startswith("lecun"):
        return 1.0 / fan_in
    if name in ("random_normal", "truncated_normal"):
        return initializer.stddev ** 2 + initializer.mean ** 2
    if name == "random_uniform":
        return (initializer.maxval - initializer.minval) ** 2 / 12
    return 2.0 / (fan_in + fan_out)


@rule("learning-rate")
def check_learning_rate(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """A learning rate far outside the optimizer's usual range oscillates or crawls."""
    optimizer = config.training.optimizer
    low, high = LEARNING_RATES.get(optimizer.name, (1e-5, 1.0))
    rate = optimizer.learning_rate
    if not low <= rate <= high:
        why = "too high: the loss oscillates or diverges" if rate > high else "too low: training crawls"
        yield Finding("warning", "training.optimizer.learning_rate", "learning-rate",
                      f"{rate:g} for {optimizer.name} is {why}; the usual range is {low:g}-{high:g}")


@rule("batch-size")
def check_batch_size(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """A batch larger than the training rows makes one update per epoch."""
    if 0 < profile.train_rows < config.training.batch_size:
        yield Finding("warning", "training.batch_size", "batch-size",
                      f"{config.training.batch_size}, more than the ~{profile.train_rows} training rows: one "
                      f"weight update per epoch; use at most {max(profile.train_rows // 4, 1)} (e.g. 32)")


@rule("fine-tune-rate")
def check_fine_tune_rate(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """Fine-tuning a pretrained base at the frozen phase's rate (or faster) destroys what it learned."""
    tune = fine_tuning(config.model)
    if tune is None:
        return
    frozen, tuned = config.training.optimizer.learning_rate, tune.learning_rate
    if tuned >= frozen:
        yield Finding("error", "model.base.fine_tune.learning_rate", "fine-tune-rate",
                      f"{tuned:g}, not lower than the frozen phase's {frozen:g}: large updates wreck the "
                      f"pretrained weights; use about {frozen / 10:g}")


@rule("embedding-vocabulary")
def check_vocabulary(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """An embedding vocabulary much larger than the corpus's distinct tokens is mostly unused weights."""
    section = text_section(config.model)
    if section is None or profile.distinct_tokens is None or section.encoder.vectorize.output_mode != "int":
        return
    text, prefix = section.encoder, section.path
    if text.vectorize.max_tokens > VOCABULARY_RATIO * max(profile.distinct_tokens, 1):
        yield Finding("warning", f"{prefix}vectorize.max_tokens", "embedding-vocabulary",
                      f"{text.vectorize.max_tokens:,} tokens, but the texts hold only "
                      f"{profile.distinct_tokens:,} distinct words: most embedding rows never train; "
                      f"use about {profile.distinct_tokens:,}")


@rule("recurrent-dropout")
def check_recurrent_dropout(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """A recurrent encoder on little text overfits without recurrent dropout."""
    section = text_section(config.model)
    if section is None or section.encoder.encoder not in RECURRENT or section.encoder.recurrent_dropout > 0:
        return
    text, prefix = section.encoder, section.path
    if profile.rows < SMALL_TEXT_ROWS:
        yield Finding("warning", f"{prefix}recurrent_dropout", "recurrent-dropout",
                      f"0 with a {text.encoder} encoder on {profile.rows:,} texts: recurrent layers overfit "
                      "small corpora; set recurrent_dropout: 0.2 (and dropout)")


@rule("image-channels")
def check_image_channels(config: PipelineConfig, profile: DataProfile) -> Iterator[Finding]:
    """Sampled image files with another channel count than `data.image.channels` fail the image check."""
    image = config.data.image
    if image is None or image.channels is None or image.on_channel_mismatch != "fail":
        return
    other = {c: n for c, n in profile.image_channels.items() if c != image.channels}
    if other:
        sampled = sum(profile.image_channels.values())
        found = ", ".join(f"{n} with {c}" for c, n in sorted(other.items()))
        fix = f"data.image.channels: {max(other, key=other.get)}" if sum(other.values()) == sampled \
            else "data.image.channels to the files' count"
        yield Finding("error", "data.image.channels", "image-channels",
                      f"{image.channels} channels, but {sum(other.values())} of {sampled} sampled files have "
                      f"another count ({found}): the image check would reject them after decoding every file; set "
                      f"{fix}, or data.image.on_channel_mismatch: convert")
