"""The lazy-import rule of docs/architecture.md, checked on the source.

An import inside a function is allowed only where it keeps something heavy
off a path that does not need it:

- a heavy third-party library (`HEAVY`): TensorFlow, Keras, Keras Tuner,
  Great Expectations, MLflow, Prefect, Dask, scikit-learn, SciPy, PyArrow,
  matplotlib, Pillow, psutil and the bundled-data packages;
- another kerasflow module, from the CLI and the servers (`kerasflow.runtime`:
  each command imports its own flow, which brings MLflow and Prefect) or
  where the imported module would bring a heavy library with it.

Standard-library modules and light libraries (pandas, numpy, yaml,
pydantic) are imported at the top of the module that uses them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kerasflow", "tasks", "flows", "schemas")
HEAVY = {
    "tensorflow", "keras", "keras_tuner", "great_expectations", "mlflow", "prefect", "prefect_dask", "dask",
    "distributed", "sklearn", "scipy", "pyarrow", "matplotlib", "PIL", "psutil", "palmerpenguins", "psycopg2",
    "uvicorn", "requests", "sqlalchemy", "alembic", "tqdm", "joblib",
}
LIGHT_THIRD_PARTY = {"pandas", "numpy", "yaml", "pydantic", "typer"}


def _modules() -> list[Path]:
    """Every source file of the installed namespace, once (kerasflow/flows etc. are links)."""
    files = [p for p in (ROOT / "kerasflow").rglob("*.py") if not p.is_symlink()
             and not any(part in ("flows", "tasks", "schemas") for part in p.relative_to(ROOT / "kerasflow").parts)]
    for top in ("tasks", "flows", "schemas"):
        files += list((ROOT / top).rglob("*.py"))
    return sorted(files)


def _lazy_imports(path: Path) -> list[tuple[int, str]]:
    """`(line, module)` of every import inside a function body of a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                    found.append((inner.lineno, inner.module))
                elif isinstance(inner, ast.Import):
                    found += [(inner.lineno, alias.name) for alias in inner.names]
    return found


def test_lazy_imports_are_heavy_libraries_only():
    """No standard-library or light library module is imported inside a function."""
    offenders = []
    for path in _modules():
        for line, module in _lazy_imports(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in LIGHT_THIRD_PARTY:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module} inside a function")
            elif top not in HEAVY and top not in ("kerasflow",):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module} (not in HEAVY) inside a function")
    assert not offenders, "\n".join(offenders)


def test_the_rule_finds_a_light_lazy_import(tmp_path: Path):
    """The check itself: a function importing `time` is found, one importing TensorFlow is not an offence."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import time\n    import tensorflow as tf\n    from kerasflow import heavy\n")
    modules = [module for _, module in _lazy_imports(source)]
    assert modules == ["time", "tensorflow", "kerasflow"]
    light = [m for m in modules if m.split(".")[0] in sys.stdlib_module_names]
    assert light == ["time"]
