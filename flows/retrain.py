"""Scheduled retraining: fresh data, drift check, challenger, champion/challenger gate, promotion."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from prefect import flow
from prefect.states import Completed, State

from kerasflow.flows.final import evaluate_and_register, fit_final_model
from kerasflow.flows.results import Drift, RetrainResult
from kerasflow.promotion.lineage import SKIPPED
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.baseline import finish_baseline, start_baseline
from kerasflow.tasks.caching import run_step
from kerasflow.tasks.card import write_model_card
from kerasflow.tasks.champion import (
    check_new_data,
    check_retrain_config,
    choose_hyperparameters,
    find_champion,
    score_champion,
)
from kerasflow.tasks.compare import compare_with_champion
from kerasflow.tasks.concurrency import side_by_side
from kerasflow.tasks.config import choose_data_defaults, read_config
from kerasflow.tasks.drift import check_drift
from kerasflow.tasks.load import load_data
from kerasflow.tasks.preprocess import fit_preprocessing
from kerasflow.tasks.promote import gate_challenger, promote_challenger
from kerasflow.tasks.register import bless_candidate
from kerasflow.tasks.runs import open_pipeline_run
from kerasflow.tasks.slices import gate_slices
from kerasflow.tasks.split import split_data
from kerasflow.tasks.validate import validate_data


@flow(name="retrain", log_prints=False)
def retrain_flow(config_path: str, overrides: list[str] | None = None, source: str | None = None,
                 force: bool = False, config: PipelineConfig | None = None) -> State[RetrainResult]:
    """Retrains on the newest data and promotes the challenger only if it passes the gate.

    The challenger is trained as `train_flow` trains its model
    (`kerasflow.flows.final.fit_final_model`): a k-fold split is
    cross-validated and ends with the fold ensemble or the refit, with the
    champion's tuned values, or a fresh search's after drift with
    `on_drift: retune`.

    When the newest data, the config and the code all equal those of the
    champion's training run, nothing is trained: the outcome is `skipped`
    (no new data), nothing is registered and no alias moves.

    Args:
        config_path: Pipeline YAML.
        overrides: `section.key=value` overrides. Default none.
        source: Data source (path or glob; the newest match is used),
            overriding `data.source`. Default: the config's.
        force: Retrain even when nothing changed since the champion. Default False.
        config: The config already validated from `config_path`,
            `overrides` and `source` (the CLI's), so the file is not read
            again. Default none (read it).

    Returns:
        A `Completed` state named after the outcome (`Promoted`, `Rejected`
        with the first failed rule as its message, `Not gated`, `Skipped`),
        whose result (what calling the flow returns) is a `RetrainResult`: the run id, the
        challenger's test metrics and version, the champion's metrics, the
        drift verdict and the decision. A failure raises (state `Failed`).
    """
    extra = [f"data.source={source}"] if source else []
    defaulted = choose_data_defaults(read_config(config_path, [*(overrides or []), *extra], config), config_path)
    config = defaulted.config
    check_retrain_config(config_path, config)
    with open_pipeline_run(config, "retrain") as run:
        champion = find_champion(run.tracker, config, run.workdir)
        # prepare_data's steps, with the unchanged-data check right after loading
        raw = run_step(load_data, run, config, read=defaulted.hand_over())
        skipped = check_new_data(run.tracker, champion, force)
        if skipped is not None:
            result = RetrainResult(run_id=run.id, experiment_id=run.experiment_id, outcome=SKIPPED, promoted=False,
                                   champion=champion.version, compared_with=champion.version, reasons=[skipped],
                                   state="Skipped", message=skipped)
            return Completed(name="Skipped", message=skipped, data=result)
        run_step(validate_data, run, config, raw)
        split = run_step(split_data, run, config, raw)
        prepared = run_step(fit_preprocessing, run, config, raw, split)
        drift = check_drift(run.tracker, config, prepared.raw, champion)
        retune = drift["action"] == "retune"  # a fresh search; else the champion's values (`choose-hyperparameters`)
        reports = {who: str(Path(run.workdir) / f"{who}-evaluation") for who in ("challenger", "champion")}
        with side_by_side(prepared) as side:  # as in `train_flow`: the baseline beside the training, and so on
            started = start_baseline(side, run, config, prepared, fresh=False)  # beside the training
            model = fit_final_model(run, config, prepared, search=retune, fresh=retune,
                                    choose=partial(choose_hyperparameters, run.tracker, config, champion))
            metrics, registered, infra = evaluate_and_register(run, config, prepared, model, side,
                                                               keep=reports["challenger"])
            baseline = finish_baseline(started, run, config, prepared, fresh=False)
        champion_metrics = score_champion(run.tracker, config, prepared, champion, keep=reports["champion"])
        comparison = compare_with_champion(run.tracker, config, reports["challenger"],
                                           reports["champion"] if champion else None)
        registered = bless_candidate(run.tracker, config, metrics, registered, infra, baseline)
        decision = gate_challenger(run.tracker, config, metrics, champion_metrics, infra, comparison)
        decision = gate_slices(run.tracker, config, decision, champion)
        outcome = promote_challenger(run.tracker, config, decision, registered["version"], champion,
                                     drift["summary"] if drift["checked"] else None)
        write_model_card(run.tracker, config, registered)
    result = RetrainResult(run_id=run.id, experiment_id=run.experiment_id, metrics=metrics,
                           champion_metrics=champion_metrics, version=registered["version"],
                           compared_with=champion.version if champion else None, drift=Drift(**drift), **outcome)
    return Completed(name=outcome["state"], message=outcome["message"], data=result)
