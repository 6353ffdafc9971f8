"""What a model was trained from, and whether a retraining would change any of it.

A retraining whose data, config and code all equal those of the champion's
training run would only train the same model again: it is skipped. The
three are read from run tags: the data fingerprint (`load-data`), the
config hash (set when the run opens) and the code version (the git commit,
else the installed kerasflow version).

This module deliberately imports neither Prefect nor MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_TAG = "kerasflow.data_fingerprint"
CONFIG_TAG = "kerasflow.config_hash"
GIT_TAG = "mlflow.source.git.commit"
CODE_TAG = "kerasflow.code_version"
SKIPPED = "skipped"
SKIPPED_BECAUSE = "no new data"


@dataclass(frozen=True)
class Lineage:
    """The inputs of a training run.

    Args:
        data: The data fingerprint, or None if not recorded.
        config: The config hash, or None if not recorded.
        code: The code version (`git:<commit>` or `kerasflow <version>`), or None.
    """

    data: str | None
    config: str | None
    code: str | None


def code_version(tags: dict[str, str], package_version: str | None = None) -> str | None:
    """Returns a run's code version: its git commit, else the recorded (or given) package version.

    Args:
        tags: The run's tags.
        package_version: The installed kerasflow version, for the current
            run when it has no git commit. Default: only what the tags say.

    Returns:
        `git:<commit>`, `kerasflow <version>`, or None when neither is known.
    """
    if tags.get(GIT_TAG):
        return f"git:{tags[GIT_TAG]}"
    if tags.get(CODE_TAG):
        return tags[CODE_TAG]
    return f"kerasflow {package_version}" if package_version else None


def lineage_of(tags: dict[str, str], package_version: str | None = None) -> Lineage:
    """Reads a run's lineage from its tags (see `code_version` for `package_version`)."""
    return Lineage(tags.get(DATA_TAG), tags.get(CONFIG_TAG), code_version(tags, package_version))


def unchanged(new: Lineage, champion: Lineage) -> bool:
    """True when every part is known and equal: retraining would reproduce the champion."""
    parts = list(zip((new.data, new.config, new.code), (champion.data, champion.config, champion.code)))
    return all(a is not None and a == b for a, b in parts)


def differences(new: Lineage, champion: Lineage) -> list[str]:
    """Names what changed since the champion was trained, e.g. `data fingerprint 1a2b… -> 3c4d…`."""
    lines = []
    for label, a, b in (("data fingerprint", new.data, champion.data), ("config hash", new.config, champion.config),
                        ("code version", new.code, champion.code)):
        if a is None or a != b:
            lines.append(f"{label} {_short(b)} -> {_short(a)}")
    return lines


def skip_reason(new: Lineage, champion_version: str, champion_run: str) -> str:
    """The one-line reason a retraining is skipped."""
    return (f"{SKIPPED} ({SKIPPED_BECAUSE}): data fingerprint {_short(new.data)}, config hash {_short(new.config)} "
            f"and code version {_short(new.code)} equal those of champion v{champion_version} (run {champion_run}); "
            "nothing registered, no alias moved; --force (flow parameter force=true) retrains anyway")


def _short(value: str | None) -> str:
    if value is None:
        return "(not recorded)"
    return value if len(value) <= 16 else value[:12] + "…"
