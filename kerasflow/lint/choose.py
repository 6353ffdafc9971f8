"""The data-driven defaults of a config, from one read of its data: what a run uses and `kerasflow lint` checks.

A config may leave out `split`, `training` and `model`, and its `tuning`
section's `space`; they are then chosen from the data's profile (`kerasflow.lint.defaults`). Values of the
`data` section that its data kind reads from the data (an image folder's
`size` and `channels`, `DataKind.infer`) are filled in first. `choose_defaults`
reads the data once, as its data kind's load step would (`DataKind.read`),
profiles it and chooses the sections; the rows it read go on to the load
step, which then does not read the sources again.

Plain code: no Prefect, no MLflow, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kerasflow.lint.defaults import DEFAULTED, default_sections, describe_defaults, leaves_space_out, with_defaults
from kerasflow.lint.profile import DataProfile, profile_frame
from kerasflow.schemas.config import ConfigError, PipelineConfig
from kerasflow.training.kinds import DataKind, Inferred, kind_of


@dataclass
class Defaulted:
    """A config with the sections it leaves out chosen from its data.

    Args:
        config: The config with the chosen sections in place (the config
            itself when it sets all of them).
        chosen: `{section: values}` of the chosen sections; empty when none.
        profile: The profile they were chosen from; None when nothing was
            read (every section set).
        read: The rows as read (`DataKind.read`), for the load step (take
            them with `hand_over`); None when nothing was read or the kind
            keeps nothing.
        inferred: The `data` values read from the data (`DataKind.infer`),
            or None.
    """

    config: PipelineConfig
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: DataProfile | None = None
    read: Any = None
    inferred: Inferred | None = None

    def hand_over(self) -> Any:
        """The rows read, once: this holder lets go of them, so they are freed when the load step is done with them."""
        read, self.read = self.read, None
        return read

    def describe(self) -> str | None:
        """The line saying what the data chose (`describe_defaults`, the inferred values), or None when nothing."""
        parts = [self.inferred.note] if self.inferred else []
        if self.chosen and self.profile:
            parts.append(describe_defaults(self.chosen, self.profile, self.config.model.kind))
        return "; ".join(parts) or None


def needs_defaults(config: PipelineConfig) -> bool:
    """True when the config leaves out a section chosen from the data (`split`, `training`, `model`, a
    `tuning.space`) or a `data` value its kind infers (`DataKind.incomplete`)."""
    return _leaves_out(config) or kind_of(config.data).incomplete(config)


def _leaves_out(config: PipelineConfig) -> bool:
    """The config leaves out a section chosen from the data's profile (`split`, `training`, `model`, `tuning.space`)."""
    return not set(DEFAULTED) <= config.given or leaves_space_out(config)


def choose_defaults(config: PipelineConfig, config_file: str) -> Defaulted:
    """Reads and profiles the config's data once, and chooses the sections the config leaves out.

    Sections the config sets (`PipelineConfig.given`) are never changed; a
    config that sets all three is returned as it is, without reading.

    Args:
        config: The validated config, as written.
        config_file: The config file's name, for errors.

    Returns:
        The `Defaulted` config, with the profile and the rows read.

    Raises:
        DataLoadError: A source cannot be read.
        ConfigError: A chosen section does not fit the rest of the config
            (e.g. a k-fold split with `data.streaming`); it names the
            sections to set instead.
    """
    if not needs_defaults(config):
        return Defaulted(config)
    kind = kind_of(config.data)
    read = kind.read(config)
    rows = kind.profile_rows(config, read)
    config, inferred = _infer(kind, config, rows, config_file)
    defaulted = _choose(config, rows, config_file) if _leaves_out(config) else Defaulted(config)
    defaulted.read, defaulted.inferred = read, inferred
    return defaulted


def lint_profile(config: PipelineConfig, config_file: str) -> tuple[PipelineConfig, DataProfile]:
    """The config as a run completes it (`choose_defaults`), and its data's profile under it, from one read.

    What `kerasflow lint CONFIG` checks: the design lint of a run sees the
    same config (its profile is of the loaded rows, `kerasflow.tasks.lint`).

    Args:
        config: The validated config, as written.
        config_file: The config file's name, for errors.

    Returns:
        `(config, profile)`: the config with its defaults, and the profile of its data for the design lint.

    Raises:
        DataLoadError: A source cannot be read.
        ConfigError: A chosen section does not fit the rest of the config.
    """
    kind = kind_of(config.data)
    rows = kind.profile_rows(config, kind.read(config))
    config = _infer(kind, config, rows, config_file)[0]
    if not needs_defaults(config):
        return config, profile_frame(config, *rows)
    defaulted = _choose(config, rows, config_file).config
    return defaulted, profile_frame(defaulted, *rows)  # the profile's split and model facts follow the defaults


def _infer(kind: DataKind, config: PipelineConfig, rows: tuple[Any, int],
           config_file: str) -> tuple[PipelineConfig, Inferred | None]:
    """The config with the `data` values its kind reads from the data (`DataKind.infer`) in place."""
    inferred = kind.infer(config, rows[0]) if kind.incomplete(config) else None
    if inferred is None:
        return config, None
    written = config.model_dump(mode="json", exclude_unset=True)
    data = written["data"]
    for key, value in inferred.data.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    try:
        completed = type(config).model_validate(written)
    except ValidationError as exc:
        raise ConfigError(config_file, [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (inferred from the data "
                                        f"for a value the config leaves out: {inferred.note})"
                                        for e in exc.errors()]) from None
    completed._given = config.given  # validation inserts a `model` for image data: the file's keys still decide
    return completed, inferred


def _choose(config: PipelineConfig, rows: tuple[Any, int], config_file: str) -> Defaulted:
    """Chooses the left-out sections from the profile of `rows` (`DataKind.profile_rows`) under the written config."""
    profile = profile_frame(config, *rows)
    chosen = default_sections(config, profile, set(config.given))
    try:
        defaulted = with_defaults(config, chosen)
    except ValidationError as exc:
        raise ConfigError(config_file, [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (a default chosen from "
                                        f"the data for a section the config leaves out; set "
                                        f"{', '.join(sorted(chosen))} in the config)" for e in exc.errors()]) from None
    return Defaulted(defaulted, chosen, profile)
