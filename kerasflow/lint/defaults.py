"""Strong defaults: the sections a config leaves out, chosen from the data's size and task.

A config may hold only `name` and `data`. Each of `split`, `training` and
`model` that it leaves out is then chosen from the data's profile:

- **split**: tables smaller than the model family's `kfold_below_rows`
  get 5-fold cross-validation ending with the fold ensemble (every row is
  scored once, and the final model averages five, which is worth one to
  two accuracy points on small tables); more get a holdout split (20%
  test, 10% validation). The threshold is 2,000 rows for most families and
  10,000 for the dense network, whose five members cost little and lifted
  satellite, ames and credit_data past gradient boosting
  (`benchmarks/quality.py`). A streamed table is always split by holdout.
- **training**: Adam at 1e-3 (regression targets are standardized inside
  the model, `preprocessing.target_transform`, so both tasks share it), up to 300 epochs with early stopping
  on the validation loss (patience 20, best weights restored) and a
  learning-rate schedule (halved after 8 epochs without improvement); the
  batch is about 1/100 of the training rows, a power of two between 32
  and 256. The model's family may adjust it (`Family.default_training`):
  image data train a CNN that converges in a few dozen epochs, so it gets
  fewer epochs, shorter patience and a larger learning rate; the dense
  network on a table below 2,000 rows trains with the TabM paper's recipe,
  AdamW at 2e-3 and patience 16 (`kerasflow.models.dense.default_training`).
- **model**: each family offers a section for the data it suits
  (`Family.default_section`), the first by `default_rank` wins: image data
  get the default CNN, sized to the images
  (`kerasflow.models.cnn.default_section`); a table with a free-text
  column gets the text family's TF-IDF network (words and word pairs
  united with `char_wb` 2-5-grams; early-stopping patience 6, as the bag
  overfits after a few epochs); any
  other table gets a dense network of two ReLU layers of 256 units with He
  initialization and dropout 0.1 (`kerasflow.models.dense.default_section`,
  measured in `benchmarks/tabular_probe.py`).
- **tuning.space**: a `tuning` section without a `space` searches its
  model family's default space (`Family.default_space`), chosen once the
  other defaults are in place: for a dense or TabM table the learning
  rate, depth, width, dropout, weight decay and the numeric columns'
  encoding (the spaces of Gorishniy et al. 2022 and of the TabM paper, cut
  to a CPU); a smaller one for text and image models; the learning rate
  alone for any other family.
- **preprocessing**, with a chosen model only: the values its family adds
  (`Family.default_preprocessing`) where the file's `preprocessing` leaves
  them out: the dense network embeds numeric columns piecewise-linearly
  (`numeric_embedding: piecewise_linear`, 48 quantile bins per column;
  `kerasflow.models.dense.default_preprocessing`), except on streamed tables;
  on a table of 1,000 rows or more it also embeds the categorical columns
  of more than 32 levels instead of one-hot encoding them
  (`categorical_embedding: {above: 32}`, measured on mlc_churn's 51 states).

Sections the config sets (or overrides with `--set`) are never changed.
Plain functions: no Prefect, no MLflow, no TensorFlow.
"""

from __future__ import annotations

from typing import Any

from kerasflow.lint.profile import DataProfile
from kerasflow.models.families import Family, families, family, family_of, fine_tuning, power_of_two
from kerasflow.schemas.config import PipelineConfig
from kerasflow.schemas.preprocessing import CategoricalEmbeddingConfig

DEFAULTED = ("split", "training", "model")


def default_split(config: PipelineConfig, profile: DataProfile, model_family: Family) -> dict[str, Any]:
    """The split of a config without one (see the module docstring).

    Args:
        config: The validated config, as written.
        profile: Its data's `DataProfile`.
        model_family: The family of the model the run trains (chosen or
            written); below its `kfold_below_rows` rows the split is k-fold.

    Returns:
        The `split` section's values.

    A model that fine-tunes a pretrained base ends k-fold with a refit (an
    ensemble of the folds would skip the fine-tuning phase). With a test
    file (`data.test_source`) no test rows are split off, so the split
    sets no `test_fraction` (the `unused-test-fraction` lint rule flags a
    config that does).
    """
    test = {} if config.data.test_source is not None else {"test_fraction": 0.2}
    if not config.data.streaming and profile.rows < model_family.kfold_below_rows:
        final = "refit" if fine_tuning(config.model) is not None else "ensemble"
        return {"kind": "kfold", "folds": 5, **test, "final": final}
    return {"kind": "holdout", **test, "val_fraction": 0.1}


def default_training(profile: DataProfile) -> dict[str, Any]:
    """The training section of a config without one."""
    return {"epochs": 300, "batch_size": power_of_two(profile.train_rows / 100, 32, 256),
            "optimizer": {"name": "adam", "learning_rate": 1e-3},
            "early_stopping": {"enabled": True, "monitor": "val_loss", "patience": 20, "restore_best_weights": True},
            "reduce_lr": {"enabled": True, "monitor": "val_loss", "factor": 0.5, "patience": 8}}


def default_model(config: PipelineConfig, profile: DataProfile) -> dict[str, Any]:
    """The model section of a config without one: the first family, by `default_rank`, that suits the data.

    Raises:
        ValueError: No registered family offers a section for these data.
    """
    for candidate in sorted(families(), key=lambda f: f.default_rank):
        section = candidate.default_section(config, profile)
        if section is not None:
            return section
    raise ValueError("no model family offers a default model section for these data")


def leaves_space_out(config: PipelineConfig) -> bool:
    """True when the config has a `tuning` section without a `space` (the family's default space is chosen)."""
    return config.tuning is not None and config.tuning.space is None


def default_tuning(config: PipelineConfig, profile: DataProfile) -> dict[str, Any]:
    """The `tuning` section as written, with its model family's default space (`Family.default_space`).

    Args:
        config: The config with its other defaults in place.
        profile: Its data's `DataProfile`.

    Returns:
        The section's values, with `space`.
    """
    written = config.model_dump(mode="json", exclude_unset=True)["tuning"]
    return {**written, "space": family_of(config.model).default_space(config, profile)}


def describe_space(space: dict[str, Any]) -> str:
    """A search space in a few words, e.g. `model.layers 1-4, model.units {64, 128}`."""
    def one(name: str, param: dict[str, Any]) -> str:
        if param["type"] == "choice":
            return f"{name} {{{', '.join(str(v) for v in param['values'])}}}"
        if param["type"] == "boolean":
            return f"{name} on/off"
        return f"{name} {param['min']:g}-{param['max']:g}" + (" log" if param.get("sampling") == "log" else "")
    return ", ".join(one(name, param) for name, param in space.items())


def default_preprocessing(config: PipelineConfig, profile: DataProfile, kind: str) -> dict[str, Any] | None:
    """The `preprocessing` section with the values that go with a chosen model section, or None when nothing is added.

    The family of the chosen model offers them (`Family.default_preprocessing`);
    every value the file sets is kept as written.

    Args:
        config: The validated config, as written.
        profile: Its data's `DataProfile`.
        kind: The `model.kind` chosen.

    Returns:
        The whole `preprocessing` section (the file's values and the added
        ones), or None when the family adds nothing the file leaves out.
    """
    written = config.preprocessing.model_dump(mode="json", exclude_unset=True)
    added = {key: value for key, value in family(kind).default_preprocessing(config, profile).items()
             if key not in written}
    return {**written, **added} if added else None


def default_sections(config: PipelineConfig, profile: DataProfile, given: set[str]) -> dict[str, dict[str, Any]]:
    """Chooses every section the config leaves out.

    Args:
        config: The validated `PipelineConfig` (as written, before defaults).
        profile: Its data's `DataProfile`.
        given: Top-level sections the file (or a `--set` override) sets.

    Returns:
        `{section: values}` for each of `split`, `training`, `model` the
        config did not set, `preprocessing` when the chosen model's family
        adds values to it (`default_preprocessing`), and `tuning` (with the
        family's default space) when its `tuning` section leaves `space`
        out; empty when none.

    Example:

    ```python
    chosen = default_sections(config, profile_source(config), given={"name", "data"})
    config = with_defaults(config, chosen)
    ```
    """
    chosen: dict[str, dict[str, Any]] = {}
    if "model" not in given:
        chosen["model"] = default_model(config, profile)
        preprocessing = default_preprocessing(config, profile, chosen["model"]["kind"])
        if preprocessing:
            chosen["preprocessing"] = preprocessing
    model_family = family(chosen["model"]["kind"]) if "model" in chosen else family_of(config.model)
    if "split" not in given:
        chosen["split"] = default_split(config, profile, model_family)
    if "training" not in given:
        chosen["training"] = model_family.default_training(default_training(profile), profile)
    if leaves_space_out(config):  # a numeric embedding the defaults chose is searched (the file did not fix it)
        unfixed = {section: values for section, values in chosen.items() if section != "preprocessing"}
        chosen["tuning"] = default_tuning(with_defaults(config, unfixed), profile)
    return chosen


def with_defaults(config: PipelineConfig, chosen: dict[str, dict[str, Any]]) -> PipelineConfig:
    """Returns the config with the chosen sections in place, validated again."""
    if not chosen:
        return config
    return type(config).model_validate({**config.model_dump(mode="json", exclude_unset=True), **chosen})


def describe_defaults(chosen: dict[str, dict[str, Any]], profile: DataProfile, kind: str | None = None) -> str:
    """One line saying which defaults the data chose, e.g. for the run's log.

    Args:
        chosen: What `default_sections` returned.
        profile: The data's `DataProfile`.
        kind: The `model.kind` the run trains, when the config wrote it
            (a chosen model section says its own).
    """
    parts = []
    if "split" in chosen:
        split = chosen["split"]
        kind = chosen["model"]["kind"] if "model" in chosen else kind
        limit = f" < {family(kind).kfold_below_rows:,} for {kind}" if kind else ""
        parts.append(f"split {split['kind']}" + (f" ({split['folds']} folds, {profile.rows:,} rows{limit})"
                                                   if split["kind"] == "kfold" else ""))
    if "model" in chosen:
        model = chosen["model"]
        parts.append(f"model {model['kind']}" + family(model["kind"]).describe_section(model))
    if "preprocessing" in chosen and "numeric_embedding" in chosen["preprocessing"]:
        parts.append(f"numeric embedding {chosen['preprocessing']['numeric_embedding']}")
    if "preprocessing" in chosen and "categorical_embedding" in chosen["preprocessing"]:
        above = CategoricalEmbeddingConfig.model_validate(chosen["preprocessing"]["categorical_embedding"]).above
        parts.append(f"categorical columns of more than {above} levels embedded")
    if "training" in chosen:
        training = chosen["training"]
        parts.append(f"training batch {training['batch_size']}, learning rate {training['optimizer']['learning_rate']}, "
                     f"up to {training['epochs']} epochs, early stopping, lr schedule")
    if "tuning" in chosen:
        parts.append(f"tuning space of the model family: {describe_space(chosen['tuning']['space'])}")
    return "defaults chosen from the data: " + "; ".join(parts)
