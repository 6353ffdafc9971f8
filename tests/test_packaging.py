"""The installed distribution is one namespace, `kerasflow`, with flows, tasks and schemas beneath it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Builds the project's wheel, as `pip install .` would."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    return next(out.glob("kerasflow-*.whl"))


def test_wheel_installs_only_the_kerasflow_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"kerasflow"}
    for module in ("kerasflow/flows/train.py", "kerasflow/tasks/train.py", "kerasflow/schemas/config.py",
                   "kerasflow/schemas/suites/digits.json", "kerasflow/runtime/cli.py",
                   "kerasflow/templates/project/prefect.yaml", "kerasflow/templates/project/configs/digits.yaml",
                   "kerasflow/templates/project/gitignore", "kerasflow/templates/project/data/incoming/digits_sample.csv"):
        assert module in names


def test_installed_layout_imports_kerasflow_tasks_but_not_tasks(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    probe = ("import importlib.util, kerasflow.tasks, kerasflow.flows, kerasflow.schemas; "
             "print([importlib.util.find_spec(n) is None for n in ('tasks', 'flows', 'schemas')])")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[True, True, True]"
