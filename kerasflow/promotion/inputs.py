"""Whether a new model may join a registered name: its input columns against an existing version's.

Every version of a registered model must take the same rows: `@champion`,
`@candidate` and `@previous-champion` are swapped under the same name by
promotion and rollback, and a server or a batch job that uses
`models:/NAME@champion` keeps sending the columns it sent before. A model
whose input columns or their types differ belongs under another name.

This module deliberately imports neither Prefect nor MLflow: the columns
arrive as plain `{column: type}` mappings (`kerasflow.tracking.registry`
reads them from the model signatures).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from kerasflow.errors import BadInputError
from kerasflow.promotion.plan import CHAMPION

CANDIDATE = "candidate"
REFERENCE_ALIASES = (CHAMPION, CANDIDATE)


class IncompatibleInputsError(BadInputError):
    """A model whose input columns differ from the versions already registered under its name."""

    label = "cannot register under this name"


@dataclass
class InputsChange:
    """How a new model's input columns differ from a registered version's.

    Args:
        added: Columns only the new model takes, `{column: type}`.
        removed: Columns only the registered version takes, `{column: type}`.
        retyped: Columns whose type changed, `{column: (old, new)}`.
    """

    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    retyped: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def compatible(self) -> bool:
        """True when the columns and their types are the same."""
        return not (self.added or self.removed or self.retyped)

    def lines(self) -> list[str]:
        """Returns one line per kind of difference, e.g. `columns this model adds: 'x' (double)`."""
        lines = []
        if self.added:
            lines.append(f"columns this model adds: {_columns(self.added)}")
        if self.removed:
            lines.append(f"columns this model lacks: {_columns(self.removed)}")
        if self.retyped:
            lines.append("columns whose type changes: "
                         + ", ".join(f"{c!r} {old} -> {new}" for c, (old, new) in self.retyped.items()))
        return lines


def compare_inputs(registered: Mapping[str, str], new: Mapping[str, str]) -> InputsChange:
    """Compares two models' input columns and types.

    Column order does not matter (rows are matched by column name); whether
    a column is marked required or optional does not either.

    Args:
        registered: `{column: type}` of the registered version.
        new: `{column: type}` of the new model.

    Returns:
        The `InputsChange`; `compatible` when nothing differs.
    """
    return InputsChange(
        added={c: t for c, t in new.items() if c not in registered},
        removed={c: t for c, t in registered.items() if c not in new},
        retyped={c: (registered[c], t) for c, t in new.items() if c in registered and registered[c] != t},
    )


def choose_reference(aliases: Mapping[str, str], versions: list[str]) -> tuple[str, str] | None:
    """Picks the registered version a new model is compared with.

    Args:
        aliases: `{alias: version}` of the registered model.
        versions: Its version numbers.

    Returns:
        `(version, why)`: the `@champion`'s version, else the
        `@candidate`'s, else the newest (`why` is `@champion`,
        `@candidate` or `newest`); None when nothing is registered.
    """
    for alias in REFERENCE_ALIASES:
        if alias in aliases:
            return str(aliases[alias]), f"@{alias}"
    return (str(max(versions, key=int)), "newest") if versions else None


def check_same_inputs(name: str, version: str, why: str, registered: Mapping[str, str],
                      new: Mapping[str, str]) -> None:
    """Refuses a model whose inputs differ from a registered version's.

    Args:
        name: The registered model name (`registry.model_name`).
        version: The version compared with.
        why: How it was chosen: `@champion`, `@candidate` or `newest`.
        registered: `{column: type}` of that version.
        new: `{column: type}` of the new model.

    Raises:
        IncompatibleInputsError: The columns or their types differ; the
            message lists the differences, the version compared with and
            the fix (another `registry.model_name`).
    """
    change = compare_inputs(registered, new)
    if change.compatible:
        return
    lines = "\n".join(f"  - {line}" for line in change.lines())
    raise IncompatibleInputsError(
        f"registry.model_name {name!r}: this model's input columns differ from those of its version {version} "
        f"({why}):\n{lines}\n"
        f"Every version of a registered model must take the same columns (aliases, serving and batch predict "
        f"switch between versions); nothing was registered. Set another registry.model_name, e.g. "
        f"--set registry.model_name={name}-2, or keep the columns of version {version}.")


def _columns(columns: Mapping[str, str]) -> str:
    return ", ".join(f"{c!r} ({t})" for c, t in columns.items())
