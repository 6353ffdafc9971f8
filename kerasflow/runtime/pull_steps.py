"""Prefect deployment steps of kerasflow, run by the worker when a flow run starts.

`prefect.yaml` names them by import path in its `pull` section. They run at
flow-run time on the worker's machine, so a deployment holds no path of
the clone it was deployed from.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kerasflow.data.predictions import OUTPUT_DIR_ENV


def enter_project(directory: str | None = None) -> dict[str, str]:
    """Pull step: makes the kerasflow project folder the flow run's working directory.

    The folder is `directory` if given, else the worker's `KERASFLOW_HOME`
    (which `kerasflow serve` sets), else the worker's working directory. It
    is resolved when the run starts, on the worker, unlike a `{{ $VAR }}`
    template, which `prefect deploy` fills in on the deploying machine.

    The team deployments (`kerasflow serve --team`) pass the folder of a
    fresh `git_clone`. The worker's `KERASFLOW_HOME` then stays the home of
    what must outlive the clone: the resume state (`.kerasflow/`) and
    relative output paths (`KERASFLOW_OUTPUT_DIR`).

    Args:
        directory: The project folder. Default: as above.

    Returns:
        `{"directory": <absolute path>}`, for later steps.

    Raises:
        FileNotFoundError: The folder holds no `configs/` (not a kerasflow project).

    Example (`prefect.yaml`):

    ```yaml
    pull:
      - kerasflow.runtime.pull_steps.enter_project: {}
    ```
    """
    target = Path(directory or os.environ.get("KERASFLOW_HOME") or os.getcwd()).expanduser().resolve()
    if not (target / "configs").is_dir():
        raise FileNotFoundError(f"{target} is not a kerasflow project (no configs/ folder): set KERASFLOW_HOME "
                                "for the worker, or start it in the project folder")
    home = os.environ.get("KERASFLOW_HOME")
    if directory and home and Path(home).resolve() != target:  # a clone: outputs and state stay in the home
        os.environ[OUTPUT_DIR_ENV] = str(Path(home).resolve())
    elif directory and not home:
        logging.getLogger("kerasflow").warning(
            "this worker has no KERASFLOW_HOME: resume state, step cache, tuner state and relative outputs are "
            "written into the run's temporary clone and deleted with it; start the worker with KERASFLOW_HOME set "
            "to a folder of its own")
    os.chdir(target)
    return {"directory": str(target)}
