"""`benchmarks/quality.py` with config sections added to the `defaults` method's config: a defaults change, measured
through the whole pipeline before it is written into the defaults.

The sections (JSON) are merged into the config of every `defaults` run
(`{"name": ..., "data": ...}`), and kerasflow chooses the sections still
left out as for a user's config: e.g. `{"model": {"kind": "tabm"}}` runs
TabM with the split, training and preprocessing the defaults give it, and
`{"preprocessing": {"normalize": "quantile", "numeric_embedding":
"piecewise_linear"}}` the default dense network on quantile-normalized
numbers. Every other argument is `quality.py`'s; write the results to their
own `--out` file (its records do not say which sections were added).

Usage: python benchmarks/quality_with.py '{"model": {"kind": "tabm"}}' --sets ionosphere --seeds 3 \\
       --methods defaults --out tabm.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402


def with_sections(sections: dict[str, Any]) -> None:
    """Makes `quality.network_config` add `sections` to the config of each `defaults` run."""
    original = quality.network_config

    def network_config(method: str, *args: Any) -> tuple[dict[str, Any], str]:
        config, searched = original(method, *args)
        if method == "defaults":
            config.update(sections)
        return config, searched

    quality.network_config = network_config


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__.split("Usage: ")[1])
    with_sections(json.loads(argv[0]))
    quality.main(argv[1:])


if __name__ == "__main__":
    main()
