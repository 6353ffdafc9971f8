"""Config model of the `tabm` family: TabM, an MLP of k weight-sharing members whose predictions are averaged.

The `model` section of a table's pipeline (Gorishniy et al., ICLR 2025):

    model: {kind: tabm, k: 32, width: 256, depth: 3, dropout: 0.1, numeric_embedding: none}

A search may vary `model.k`, `model.width`, `model.depth` and
`model.dropout` (`TABM_TUNABLE`). Without a `training.optimizer` section the
family trains with the paper's AdamW (learning rate 2e-3, weight decay 3e-4).
The module registers the section itself (`register_family_config`), at its
end; `kerasflow/schemas/__init__.py` imports it.

This module imports only `kerasflow.schemas.base` and `kerasflow.schemas.families`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from kerasflow.schemas.base import Fraction, PositiveInt, Section
from kerasflow.schemas.families import register_family_config

_MEMBERS = Annotated[int, Field(ge=1, le=256)]
_DEPTH = Annotated[int, Field(ge=1, le=16)]

# Tunable names of the `tabm` family: name -> (accepted parameter types, value type).
TABM_TUNABLE: dict[str, tuple[tuple[str, ...], Any]] = {
    "model.k": (("int", "choice"), _MEMBERS),
    "model.width": (("int", "choice"), PositiveInt),
    "model.depth": (("int", "choice"), _DEPTH),
    "model.dropout": (("float", "choice"), Fraction),
}


class TabMModelConfig(Section):
    """The network architecture of the `tabm` family.

    Args:
        kind: `tabm`.
        k: The number of ensemble members (they share the weight matrices). Default 32.
        width: Units of every block. Default 256 (the paper's 512 is slow on a CPU).
        depth: The number of blocks. Default 3.
        dropout: Dropout rate after every block. Default 0.1.
        numeric_embedding: How numeric columns enter the network: `none`
            (default), `periodic` (PLR embeddings) or `piecewise_linear`
            (piecewise-linear encoding on quantile bins fitted on the
            training rows, shipped inside the model).
    """

    kind: Literal["tabm"]
    k: _MEMBERS = 32
    width: PositiveInt = 256
    depth: _DEPTH = 3
    dropout: Fraction = 0.1
    numeric_embedding: Literal["none", "periodic", "piecewise_linear"] = "none"


def tabm_config_problems(config: Section) -> list[tuple[str, str]]:
    """A streamed table cannot fit piecewise-linear bins: the rows never reach memory at once.

    Args:
        config: The `PipelineConfig` with a `tabm` model (typed by its base: `schemas.config` imports this module).

    Returns:
        `(dotted path, message)` pairs; empty when the sections fit.
    """
    if config.data.streaming and config.model.numeric_embedding == "piecewise_linear":
        return [("model.numeric_embedding", "piecewise_linear fits quantile bins on the training rows in memory, "
                                            "which data.streaming does not hold; use none or periodic")]
    return []


register_family_config(TabMModelConfig, tunables=TABM_TUNABLE, streams=True, config_problems=tabm_config_problems)
