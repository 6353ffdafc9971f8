"""Config models of functional models: several inputs, several outputs, shared layers.

A `model` of kind `functional` names its input branches and its output
heads. Text inputs go through a `TextVectorization` + embedding + encoder
branch (see `kerasflow.schemas.text.TextEncoderConfig`), the tabular input through the
usual numeric/categorical preprocessing; the branches are concatenated, run
through a dense trunk, and each output head has its own loss and weight:

    model:
      kind: functional
      inputs:
        - {type: text, name: opening, column: review, segment: first_sentence}
        - {type: text, name: body, column: review, segment: rest}
      shared_encoder: true
      text: {encoder: gru, units: 32, vectorize: {sequence_length: 150}}
      hidden_units: [32]
      outputs:
        - {name: score, target: score, loss_weight: 1.0}
        - {name: length, target: review, statistic: log_words, task: regression, loss_weight: 0.2}

This module imports only `kerasflow.schemas.base` and `kerasflow.schemas.text`, so
`kerasflow.schemas.config` and `kerasflow.schemas.tuning` can import it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from kerasflow.schemas.base import Activation, Fraction, PositiveInt, Section, problems_error
from kerasflow.schemas.text import ENCODER_TUNABLE, TextEncoderConfig

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]
Statistic = Literal["words", "log_words", "chars"]

# Tunable names of the `functional` family: the trunk's, and the text branch's under `model.text.`.
FUNCTIONAL_TUNABLE: dict[str, tuple[tuple[str, ...], Any]] = {
    "model.units": (("int", "choice"), PositiveInt),
    "model.layers": (("int", "choice"), Annotated[int, Field(ge=1, le=8)]),
    "model.dropout": (("float", "choice"), Fraction),
    "model.activation": (("choice",), Activation),
    **{f"model.text.{name}": rule for name, rule in ENCODER_TUNABLE.items()},
}


class TextInputConfig(Section):
    """A text input branch.

    Args:
        type: `text`.
        name: Branch name (letters, digits, `_`).
        column: The raw text column it reads.
        segment: `all` (default), `first_sentence` or `rest`: which part of
            each text the branch sees, selected inside the model, so two
            branches can read one column.
    """

    type: Literal["text"]
    name: Identifier
    column: Annotated[str, Field(min_length=1)]
    segment: Literal["all", "first_sentence", "rest"] = "all"


class TabularInputConfig(Section):
    """The tabular input branch: numeric and categorical columns.

    Numeric columns are imputed and z-scored, categorical ones one-hot
    encoded, with statistics of the training rows (`preprocessing` section).

    Args:
        type: `tabular`.
        name: Branch name. Default `tabular`.
        columns: The columns. Required.
        categorical: Columns among them to one-hot encode. Default: the
            string and boolean ones.
    """

    type: Literal["tabular"]
    name: Identifier = "tabular"
    columns: Annotated[list[str], Field(min_length=1)]
    categorical: list[str] | None = None


InputConfig = Annotated[Union[TextInputConfig, TabularInputConfig], Field(discriminator="type")]


class OutputConfig(Section):
    """One output head, with its own loss and loss weight.

    Args:
        name: Head name; its test metrics are `test.<name>.<metric>` and
            its served columns `<name>.prediction`, `<name>.proba_<class>`.
        target: The label column; with `statistic`, the text column the
            label is computed from.
        statistic: Derive a numeric label from the text column `target`:
            `words` (word count), `log_words` (log(1 + words)) or `chars`.
            Default none (the column itself is the label).
        task: `classification`, `regression`, or `auto` (default) to infer
            from the labels.
        label_encoding: `integer` (default) or `one_hot` for classifiers.
        loss_weight: Weight of this head's loss in the total. Default 1.
        hidden_units: Dense layers of this head alone. Default none.
    """

    name: Identifier
    target: Annotated[str, Field(min_length=1)]
    statistic: Statistic | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    label_encoding: Literal["integer", "one_hot"] = "integer"
    loss_weight: Annotated[float, Field(gt=0, le=1000)] = 1.0
    hidden_units: list[PositiveInt] = Field(default_factory=list)

    @model_validator(mode="after")
    def _statistics_are_regression(self) -> "OutputConfig":
        if self.statistic is not None and self.task == "classification":
            raise ValueError(f"statistic {self.statistic} is a number: task must be regression or auto")
        return self


class FunctionalModelConfig(Section):
    """A functional Keras model with named input branches and output heads.

    Args:
        kind: `functional`.
        inputs: The input branches (`type: text` or `type: tabular`, at most
            one tabular). Required.
        text: Vectorization, embedding and encoder of the text branches;
            see `kerasflow.schemas.text.TextEncoderConfig`.
        shared_encoder: All text branches use one vectorizer, embedding and
            encoder: the same layers (and weights) applied to each input.
            Default false (each branch has its own).
        hidden_units: Dense trunk layers after the branches are
            concatenated. Default [64].
        activation: Activation of trunk and head layers. Default `relu`.
        dropout: Dropout after each trunk layer. Default 0.
        outputs: The output heads. Default: one head on `data.target`.
    """

    kind: Literal["functional"]
    inputs: Annotated[list[InputConfig], Field(min_length=1)]
    text: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    shared_encoder: bool = False
    hidden_units: list[PositiveInt] = Field(default_factory=lambda: [64])
    activation: Activation = "relu"
    dropout: Fraction = 0.0
    outputs: Annotated[list[OutputConfig], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _names_are_unique(self) -> "FunctionalModelConfig":
        problems = []
        for field, items in (("inputs", self.inputs), ("outputs", self.outputs or [])):
            names = [item.name for item in items]
            for i, name in enumerate(names):
                if name in names[:i]:
                    problems.append((f"{field}.{i}.name", f"duplicate name {name!r}"))
        tabular = [i for i, item in enumerate(self.inputs) if item.type == "tabular"]
        if len(tabular) > 1:
            problems.append((f"inputs.{tabular[1]}", "at most one tabular input: list all its columns in one"))
        if self.shared_encoder and len(self.text_inputs) < 2:
            problems.append(("shared_encoder", "sharing needs at least two text inputs"))
        if problems:
            raise problems_error(problems)
        return self

    @property
    def text_inputs(self) -> list[TextInputConfig]:
        """The text branches, in config order."""
        return [item for item in self.inputs if isinstance(item, TextInputConfig)]

    @property
    def tabular_input(self) -> TabularInputConfig | None:
        """The tabular branch, if any."""
        return next((item for item in self.inputs if isinstance(item, TabularInputConfig)), None)
