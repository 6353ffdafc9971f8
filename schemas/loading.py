"""Reading a pipeline config file: YAML, `--set` overrides, and readable validation errors.

The models themselves live in `kerasflow.schemas.config`, whose
`load_config` puts these pieces together. Nothing here imports the models,
so every section module may raise `ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kerasflow.errors import BadInputError


class ConfigError(BadInputError):
    """A pipeline config that cannot be read or fails validation.

    Args:
        path: The config file the error is about.
        problems: One line per problem, each naming its key path.
    """

    label = "bad config"

    def __init__(self, path: str | Path, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid config {self.path}:\n{lines}")


def read_raw_config(path: str | Path) -> dict[str, Any]:
    """Reads a config file as a plain mapping without validating it.

    Args:
        path: YAML file.

    Returns:
        The parsed mapping.

    Raises:
        ConfigError: The file is missing, unreadable, not YAML, or not a mapping.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(path, [f"file not found: {file.resolve()}"])
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(path, [f"top level must be a mapping of sections, got {type(raw).__name__}"])
    return raw


def apply_override(raw: dict[str, Any], item: str, path: str | Path) -> None:
    """Sets one `dotted.key=value` override (a YAML scalar) in a raw config mapping.

    Args:
        raw: The mapping `read_raw_config` returned; changed in place.
        item: The override, e.g. `training.epochs=3`.
        path: The config file, named in errors.

    Raises:
        ConfigError: The override is malformed or its value is not plain YAML.
    """
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(path, [f"override {item!r} must look like section.key=value"])
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(path, [f"override {item!r}: {part} is not a section"])
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(path, [f"{key.strip()}: the --set value {value!r} is not a plain YAML value ({problem}); "
                                 "quote text and write lists as [a, b]"]) from None


def error_lines(err: dict[str, Any], root: type[BaseModel]) -> list[str]:
    """Describes one pydantic validation error by its dotted key path.

    Args:
        err: One item of `ValidationError.errors()`.
        root: The model that was validated (the walk through the sections starts there).

    Returns:
        One line per problem; a `problems` error (see
        `kerasflow.schemas.base.problems_error`) carries several.
    """
    if err["type"] != "problems":
        return [_describe(err, root)]
    base = ".".join(_walk(err["loc"], root)[0])
    return [f"{base + '.' if base else ''}{where}: {message}" for where, message in err["ctx"]["problems"]]


def _describe(err: dict[str, Any], root: type[BaseModel]) -> str:
    where = ".".join(_walk(err["loc"], root)[0]) or "(top level)"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(err["loc"][:-1], root)
        return f"{where}: unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if err["type"] == "missing":
        return f"{where}: required key is missing"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message} (got {err.get('input')!r})"


def _allowed_keys(loc: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    model = _walk(loc, root)[1]
    return sorted(model.model_fields) if model else []


def _walk(loc: tuple[Any, ...], root: type[BaseModel]) -> tuple[list[str], type[BaseModel] | None]:
    """Follows an error location through the sections.

    Returns:
        The location's key path without the tags pydantic inserts for
        discriminated unions (`model.cnn.filters` is shown as
        `model.filters`), and the section type it ends in.
    """
    parts: list[str] = []
    model: type[BaseModel] | None = root
    members: dict[str, type[BaseModel]] | None = None
    for part in loc:
        if isinstance(part, int):  # a list item: same section type as its list
            parts.append(str(part))
            continue
        if members is not None:  # the union tag: pick that member, show nothing
            model, members = members.get(str(part)), None
            continue
        parts.append(str(part))
        field = model.model_fields.get(str(part)) if model else None
        model = _section_type(field.annotation) if field else None
        members = _tagged_members(field) if field is not None else None
    return parts, model


def _tagged_members(field: Any) -> dict[str, type[BaseModel]] | None:
    """Members of a discriminated union field (or of its list items), by tag."""
    annotation, key = field.annotation, field.discriminator
    if key is None and getattr(annotation, "__origin__", None) is list:
        annotation = annotation.__args__[0]
        key = next((m.discriminator for m in getattr(annotation, "__metadata__", ())
                    if getattr(m, "discriminator", None)), None)
        annotation = getattr(annotation, "__origin__", annotation)
    if not isinstance(key, str):
        return None
    members = {}
    for member in getattr(annotation, "__args__", ()):
        if isinstance(member, type) and issubclass(member, BaseModel) and key in member.model_fields:
            for tag in getattr(member.model_fields[key].annotation, "__args__", ()):
                members[str(tag)] = member
    return members


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _section_type(arg)
        if found:
            return found
    return None
