"""Config model of the `tabm` family: TabM, an MLP of k weight-sharing members whose predictions are averaged.

The `model` section of a table's pipeline (Gorishniy et al., ICLR 2025):

    model: {kind: tabm, k: 32, width: 256, depth: 3, dropout: 0.1}

How numeric and categorical columns enter the network is the
`preprocessing` section's (`numeric_embedding`, `normalize`,
`categorical_embedding`), shared with the `dense` family. A search may vary
`model.k`, `model.width`, `model.depth`, `model.dropout`,
`model.weight_decay` and `preprocessing.numeric_embedding` (`TABM_TUNABLE`).
Without a `training.optimizer` section the family trains with the paper's
AdamW (learning rate 2e-3, weight decay `model.weight_decay`, 3e-4).
The module registers the section itself (`register_family_config`), at its
end; `kerasflow/schemas/__init__.py` imports it.

This module imports only `kerasflow.schemas.base` and `kerasflow.schemas.families`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from kerasflow.schemas.base import NUMERIC_EMBEDDING_TUNABLE, Fraction, PositiveInt, Section
from kerasflow.schemas.families import register_family_config

_MEMBERS = Annotated[int, Field(ge=1, le=256)]
_DEPTH = Annotated[int, Field(ge=1, le=16)]

# Tunable names of the `tabm` family: name -> (accepted parameter types, value type).
TABM_TUNABLE: dict[str, tuple[tuple[str, ...], Any]] = {
    "model.k": (("int", "choice"), _MEMBERS),
    "model.width": (("int", "choice"), PositiveInt),
    "model.depth": (("int", "choice"), _DEPTH),
    "model.dropout": (("float", "choice"), Fraction),
    "model.weight_decay": (("float", "choice"), Annotated[float, Field(ge=0)]),
    **NUMERIC_EMBEDDING_TUNABLE,
}


class TabMModelConfig(Section):
    """The network architecture of the `tabm` family.

    Args:
        kind: `tabm`.
        k: The number of ensemble members (they share the weight matrices). Default 32.
        width: Units of every block. Default 256 (the paper's 512 is slow on a CPU).
        depth: The number of blocks. Default 3.
        dropout: Dropout rate after every block. Default 0.1.
        weight_decay: Weight decay of the paper's AdamW (`training.optimizer.name:
            adamw`; other optimizers have none). Default 3e-4, the paper's.
    """

    kind: Literal["tabm"]
    k: _MEMBERS = 32
    width: PositiveInt = 256
    depth: _DEPTH = 3
    dropout: Fraction = 0.1
    weight_decay: Annotated[float, Field(ge=0)] = 3e-4


register_family_config(TabMModelConfig, tunables=TABM_TUNABLE, streams=True)
