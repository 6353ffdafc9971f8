"""`kerasflow init DIR`: a new project written from the templates shipped in the package.

The templates (`kerasflow/templates/project/`, package data of the wheel)
hold what a pip-installed user needs to `run` and `serve`: a sample config
on a bundled dataset (`configs/digits.yaml`), a `prefect.yaml` whose
deployments point at the installed flows (module entrypoints), rows for the
predict deployment, a README and a `.gitignore`. `__PROJECT__` in them
becomes the project's name (the folder's), which `kerasflow serve`
namespaces the deployments by (`kerasflow.runtime.projects`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from kerasflow.runtime.projects import safe_name

PLACEHOLDER = "__PROJECT__"
RENAMED = {"gitignore": ".gitignore"}  # dotfiles ship under plain names (package-data globs skip them)
SAMPLE_CONFIG = "configs/digits.yaml"


class ScaffoldError(RuntimeError):
    """The project folder cannot be written (not empty without `force`, or not a folder)."""


@dataclass
class Scaffold:
    """A project written by `init_project`.

    Args:
        home: The project folder.
        name: The project's name (its deployments' namespace).
        written: The files written, relative to `home`.
    """

    home: Path
    name: str
    written: list[str]

    def describe(self, given: str) -> list[str]:
        """What `kerasflow init` prints: the files written and the next commands.

        Args:
            given: The folder as the user wrote it, for the `cd` line.
        """
        folder = shlex.quote(given)
        return [f"wrote the kerasflow project {self.name!r} in {self.home}:",
                *(f"  {path}" for path in self.written),
                "next:",
                f"  cd {folder} && kerasflow run {SAMPLE_CONFIG}    # train, evaluate, register digits-dense",
                f"  kerasflow serve    # deploys retrain/{self.name}-nightly (daily 02:00 UTC), "
                f"train/{self.name}-manual, batch-predict/{self.name}-predict, and starts a worker"]


def template_files(root: Traversable | None = None, prefix: str = "") -> list[tuple[str, Traversable]]:
    """The template files, as `(path relative to the project, resource)`, sorted.

    Args:
        root: The folder to list. Default: the package's `templates/project`.
        prefix: The project path of `root`. Default: the project's top.
    """
    root = root if root is not None else resources.files("kerasflow") / "templates" / "project"
    found: list[tuple[str, Traversable]] = []
    for entry in root.iterdir():
        if entry.name == "__pycache__":
            continue
        path = f"{prefix}{RENAMED.get(entry.name, entry.name)}"
        found += template_files(entry, f"{path}/") if entry.is_dir() else [(path, entry)]
    return sorted(found, key=lambda item: item[0])


def init_project(home: Path, force: bool = False) -> Scaffold:
    """Writes a new project into `home` from the package's templates.

    Args:
        home: The project folder; created if missing.
        force: Write into a non-empty folder, replacing files of the same names. Default False.

    Returns:
        The `Scaffold`: the folder, the project's name, the files written.

    Raises:
        ScaffoldError: `home` is a file, or a non-empty folder without `force`.
    """
    home = Path(home).expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise ScaffoldError(f"{home} is a file, not a folder")
    if home.is_dir() and any(home.iterdir()) and not force:
        raise ScaffoldError(f"{home} is not empty: choose a new folder, or pass --force to write the project's "
                            "files into it (files of the same names are replaced)")
    name = safe_name(home.name)
    written = []
    for relative, resource in template_files():
        target = home / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        data = resource.read_bytes()
        if relative.endswith((".yaml", ".md")):
            data = data.decode().replace(PLACEHOLDER, name).encode()
        target.write_bytes(data)
        written.append(relative)
    return Scaffold(home, name, written)

