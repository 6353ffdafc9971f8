"""Architecture rules that import-linter cannot express: only `kerasflow.models` knows the family names.

A model family's kind (`dense`, `cnn`, `text`, `functional`, `tabm`) appears only in
its own two modules (`kerasflow/models/<family>.py` and its `schemas/`
module) and in the registries; everything else asks the family through the
hooks of `kerasflow.models.families`. The scan reads the source with `ast`,
so a family name used as something else (a text column, a tag value) is not
mistaken for a branch on the model kind.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KINDS = frozenset({"dense", "cnn", "text", "functional", "tabm"})
# The families' own modules, and the registries that hold them.
FAMILY_MODULES = {"schemas/dense.py", "schemas/images.py", "schemas/text.py", "schemas/functional.py",
                  "schemas/tabm.py", "schemas/families.py"}


def _sources() -> list[Path]:
    """Every production module: `kerasflow/` (but `models/`) and the top-level `flows/`, `tasks/`, `schemas/`."""
    files = [p for p in (ROOT / "kerasflow").rglob("*.py")
             if p.relative_to(ROOT / "kerasflow").parts[0] not in ("models", "flows", "tasks", "schemas")]
    for folder in ("flows", "tasks", "schemas"):
        files += [p for p in (ROOT / folder).rglob("*.py") if str(p.relative_to(ROOT)) not in FAMILY_MODULES]
    return sorted(files)


def _mentions_kind(node: ast.AST) -> bool:
    """The expression reads a model's kind: `config.model.kind`, `model["kind"]`, `getattr(model, "kind")`, ..."""
    return re.search(r"\bmodel\b.*\bkind\b", ast.unparse(node)) is not None


def _kind_constants(node: ast.AST) -> list[str]:
    """The family names an expression holds as literals (a constant, or the items of a tuple, list or set)."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [i.value for i in items if isinstance(i, ast.Constant) and i.value in KINDS]


def family_name_uses(source: str) -> list[tuple[int, str]]:
    """Lines where source code branches on, or builds, a model kind by its family name.

    Found: `kind == "dense"` (or `!=`, `in (...)`, either side), a dict
    with `"kind": "cnn"`, and a dict keyed by two or more family names
    (a table by kind).

    Args:
        source: Python source.

    Returns:
        `(line, family name)` per use.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_mentions_kind(side) for side in sides):
                found += [(node.lineno, name) for side in sides for name in _kind_constants(side)]
        elif isinstance(node, ast.Dict):
            keys = [k.value if isinstance(k, ast.Constant) else None for k in node.keys]
            found += [(node.lineno, v.value) for k, v in zip(keys, node.values)
                      if k == "kind" and isinstance(v, ast.Constant) and v.value in KINDS]
            named = [k for k in keys if k in KINDS]
            if len(named) >= 2:
                found += [(node.lineno, name) for name in named]
    return found


@pytest.mark.parametrize("snippet", [
    'if config.model.kind == "dense": pass',
    'if "text" != model.kind: pass',
    'if config.model.kind in ("text", "functional"): pass',
    'section = {"kind": "cnn", "dropout": 0.1}',
    'field = {"dense": "hidden_units", "cnn": "dense_units"}.get(model.kind)',
    'if getattr(model, "kind", None) == "cnn": pass',
    'if model["kind"] == "text": pass',
])
def test_the_scan_finds_a_branch_on_the_model_kind(snippet: str) -> None:
    assert family_name_uses(snippet)


@pytest.mark.parametrize("snippet", [
    'if item.type == "text": pass',
    'column = "text"',
    'if split.kind == "kfold": pass',
    'values = words(frame) if kind == "text" else numbers(frame)',  # a drift feature's kind
    'labels = {"text": 1}',
    'print(f"use model.kind functional to add tabular columns")',
])
def test_the_scan_leaves_other_uses_of_the_names_alone(snippet: str) -> None:
    assert not family_name_uses(snippet)


def test_only_the_models_package_knows_family_names() -> None:
    uses = [f"{path.relative_to(ROOT)}:{line}: {name!r}" for path in _sources()
            for line, name in family_name_uses(path.read_text(encoding="utf-8"))]
    assert not uses, ("family names used outside kerasflow/models and the families' schema modules; "
                      "ask the family through a hook of kerasflow.models.families instead:\n" + "\n".join(uses))


def test_the_scan_covers_the_layers_above_models() -> None:
    scanned = {str(p.relative_to(ROOT)) for p in _sources()}
    assert {"kerasflow/lint/rules.py", "kerasflow/data/contract.py", "tasks/preprocess.py",
            "schemas/config.py", "schemas/tuning.py", "kerasflow/features/outputs.py"} <= scanned
    assert not any(name.startswith("kerasflow/models/") for name in scanned)
