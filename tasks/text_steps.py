"""Preprocessing boundary of the `text` and `functional` model families.

Called by `kerasflow.tasks.steps.fit_preprocessing` (inside its Prefect task) for
those kinds: fits vocabularies, tabular statistics and labels on the
training rows, writes the specs and logs them, with the text metrics
(`text.vocabulary_size`, `text.embedding_coverage`, per branch
`text.<branch>.*`) into the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kerasflow import tracking


def prepare_text_inputs(run_id: str, config: Any, raw_path: str, split_path: str, workdir: str) -> Any:
    """Fits a text or functional model's inputs and labels on training rows and logs them.

    Args:
        run_id: The parent MLflow run.
        config: The pipeline config.
        raw_path: Raw rows (Parquet).
        split_path: The split JSON.
        workdir: The run's scratch folder.

    Returns:
        The `kerasflow.tasks.steps.Prepared` paths.
    """
    import pandas as pd

    from kerasflow.features.outputs import fit_model_inputs
    from kerasflow.data.split import Split
    from kerasflow.tasks.steps import Prepared

    frame = pd.read_parquet(raw_path)
    fitted = fit_model_inputs(config, frame.iloc[Split.load(split_path).train])
    out = Path(workdir)
    prepared = Prepared(raw_path, split_path, str(fitted.features.save(out / "features.json")),
                        str(fitted.labels.save(out / "labels.json")))
    client = tracking.configure(config.registry.tracking_uri)
    client.log_artifact(run_id, prepared.features, "preprocessing")
    client.log_artifact(run_id, prepared.labels, "preprocessing")
    tracking.log_params(client, run_id, fitted.params, prefix="preprocessing.")
    tracking.log_metrics(client, run_id, fitted.metrics, prefix="text.")
    return prepared
