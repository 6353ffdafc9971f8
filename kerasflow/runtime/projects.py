"""A project on a shared Prefect server: its name, its namespaced deployments, and their schedules.

`kerasflow serve` deploys a project's `prefect.yaml` under the project's
name (`retrain/<project>-nightly` on the pool `<project>-process`), so that
two projects served on one Prefect server do not overwrite each other's
deployments, and pauses their schedules when it stops, so that no
scheduled run piles up while no worker serves them (docs/deployments.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")  # safe in Prefect deployment and pool names


class StackError(RuntimeError):
    """A part of the stack failed to start; the message points at its log."""


def project_name(home: Path) -> str:
    """The name `kerasflow serve` namespaces a project's deployments by: the `name` of its `prefect.yaml`
    (`kerasflow init` writes the folder's name there), else the folder's name.

    Args:
        home: The project folder.

    Returns:
        The name, with characters a Prefect name cannot hold replaced by `-`.
    """
    path = Path(home) / "prefect.yaml"
    data = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    return safe_name(str(data.get("name") or Path(home).resolve().name))


def safe_name(text: str) -> str:
    """`text` as a project name: characters a Prefect name cannot hold become `-`; at most 63; `kerasflow` if empty."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip("-_.")[:63].rstrip("-_.") or "kerasflow"


def namespaced_deployments(source: Path, target: Path, project: str, pool: str) -> Path:
    """Writes `source` (a `prefect.yaml`) to `target` with each deployment named `<project>-<name>` on `pool`.

    Args:
        source: The deployment file to copy.
        target: Where to write the namespaced copy.
        project: The project's name.
        pool: The work pool every deployment uses.

    Returns:
        `target`.
    """
    data = yaml.safe_load(Path(source).read_text()) or {}
    for deployment in data.get("deployments") or []:
        deployment["name"] = f"{project}-{deployment['name']}"
        deployment["work_pool"] = {**(deployment.get("work_pool") or {}), "name": pool}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("# Written by `kerasflow serve` from " + str(source) + ": deployment names namespaced by the "
                      "project (docs/deployments.md).\n" + yaml.safe_dump(data, sort_keys=False))
    return target


def set_schedules(api_url: str, names: list[str], pool: str, active: bool, auth_string: str | None = None) -> list[str]:
    """Resumes (or pauses) the deployments named `names` on the work pool `pool`.

    A paused deployment creates no scheduled runs, and pausing deletes those
    already scheduled (Prefect's `pause_deployment`).

    Args:
        api_url: The Prefect API.
        names: Deployment names (without their flow's name).
        pool: The work pool they run on.
        active: True to resume them, False to pause them.
        auth_string: The server's API auth string (`PREFECT_API_AUTH_STRING`
            of a team stack with logins), or None.

    Returns:
        The names of the deployments changed.
    """
    if not names:
        return []
    # Prefect's client only here: `kerasflow serve` drives everything else through the `prefect` CLI
    # in subprocesses, and the CLI pauses schedules one id at a time or all of a server's at once.
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        WorkPoolFilter,
        WorkPoolFilterName,
    )

    with SyncPrefectClient(api_url, auth_string=auth_string) as client:
        found = client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names)),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])))
        for deployment in found:
            (client.resume_deployment if active else client.pause_deployment)(deployment.id)
    return [deployment.name for deployment in found]
