"""Real Optuna studies: pruning, persistence, failed trials, search spaces."""

import optuna
import pytest

from xlstm_ts import datasets
from xlstm_ts.data import Frequency
from xlstm_ts.tuning import default_search_space, load_search_space, tune

FIXED = {"horizon": 24, "lookback": 96, "patch_len": 24, "patch_stride": 12, "max_epochs": 4,
         "batches_per_epoch": 8, "num_blocks": 2}


@pytest.fixture(scope="module")
def df():
    return datasets.synthetic(3, 24 * 20, seasonalities=(24,), noise=0.3, seed=1)


def test_pruned_trials_train_fewer_epochs(df, tmp_path):
    space = {"learning_rate": {"type": "float", "low": 1e-5, "high": 3e-2, "log": True},
             "d_model": {"type": "categorical", "choices": [16, 32]},
             "n_slstm": {"type": "int", "low": 0, "high": 1}}
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = tune(df, space, n_trials=6, refit=True, storage=tmp_path / "study.db",
                  study_name="prune", tracking={"uri": store, "experiment": "prune"}, **FIXED)
    states = {t.number: t.state for t in result.study.trials}
    pruned = [t for t in result.study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in result.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned, states
    assert max(t.user_attrs["epochs_trained"] for t in pruned) < min(
        t.user_attrs["epochs_trained"] for t in complete)
    assert result.best_score == min(t.value for t in complete)
    assert result.forecaster is not None and len(result.forecaster.predict()) == 3 * 24
    # the refit is the best trial's model: its parameters, n_slstm turned into slstm_at
    best, refit = result.best_params, result.forecaster
    assert refit.learning_rate == best["learning_rate"] and refit.d_model == best["d_model"]
    assert refit.slstm_at == ((0,) if best["n_slstm"] == 1 else ())  # one of two blocks: 0
    assert all(getattr(refit, k) == v for k, v in FIXED.items() if k != "progress_bar")
    # round two, item 12: a pruned trial's MLflow run is KILLED and tagged, not FAILED
    import mlflow

    runs = mlflow.MlflowClient(tracking_uri=store).search_runs(
        [mlflow.MlflowClient(tracking_uri=store).get_experiment_by_name("prune").experiment_id])
    status = {r.info.run_name: (r.info.status, r.data.tags.get("optuna.pruned")) for r in runs}
    assert {status[f"trial-{t.number}"] for t in pruned} == {("KILLED", "true")}, status
    assert {status[f"trial-{t.number}"][0] for t in complete} == {"FINISHED"}


def test_same_study_name_continues_the_study(df, tmp_path):
    space = {"d_model": {"type": "categorical", "choices": [16, 32]}}
    storage = tmp_path / "continue.db"
    tune(df, space, n_trials=2, refit=False, storage=storage, study_name="s", **FIXED)
    result = tune(df, space, n_trials=2, refit=False, storage=storage, study_name="s",
                  **FIXED)
    assert [t.number for t in result.study.trials] == [0, 1, 2, 3]
    loaded = optuna.load_study(study_name="s", storage=f"sqlite:///{storage}")
    assert len(loaded.trials) == 4


def test_failed_trials_are_recorded_and_the_study_goes_on(df):
    space = {"learning_rate": {"type": "categorical", "choices": [1e9, 1e-2]}}
    result = tune(df, space, n_trials=4, refit=False, sampler="random", **FIXED)
    failed = [t for t in result.study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all(t.params["learning_rate"] == 1e9 for t in failed)
    assert all("FloatingPointError" in t.user_attrs["fail_reason"] for t in failed)
    assert result.best_params == {"learning_rate": 1e-2}


def test_search_space_from_yaml_and_validation(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("d_model:\n  type: categorical\n  choices: [16, 32]\n"
                    "dropout:\n  type: float\n  low: 0.0\n  high: 0.2\n")
    assert load_search_space(path)["dropout"] == {"type": "float", "low": 0.0, "high": 0.2}
    with pytest.raises(ValueError, match="unknown parameter 'depth'"):
        load_search_space({"depth": {"type": "int", "low": 1, "high": 2}})
    with pytest.raises(ValueError, match=r"search_space.dropout: needs low <= high"):
        load_search_space({"dropout": {"type": "float", "low": 0.5, "high": 0.1}})
    with pytest.raises(ValueError, match=r"needs type in"):
        load_search_space({"dropout": {"type": "uniform"}})
    hour, day = 3_600_000_000, 86_400_000_000
    spaces = {name: default_search_space(freq) for name, freq in {
        "hourly": Frequency("fixed", hour), "daily": Frequency("fixed", day),
        "weekly": Frequency("fixed", 7 * day), "business": Frequency("business_days", 1),
        "monthly": Frequency("months", 1), "15 minutes": Frequency("fixed", hour // 4),
        "index": None}.items()}
    for space in spaces.values():
        assert all(p <= min(space["lookback"]["choices"]) for p in space["patch_len"]["choices"])
    shown = {name: (s["lookback"]["choices"], s["patch_len"]["choices"])
             for name, s in spaces.items()}
    assert shown["hourly"] == ([96, 168, 336], [8, 16, 24])
    assert shown["daily"] == ([28, 56, 112], [7, 14])
    assert shown["business"] == ([20, 40, 80], [5, 10])  # a week, two
    assert shown["monthly"] == ([24, 36, 48], [6, 12])
    # weekly data read "7d" -> "d" and got the daily space (issue 48, item 3)
    assert shown["weekly"] == ([104, 156, 208], [26, 52])
    assert shown["15 minutes"] == ([384, 672, 1344], [32, 64, 96])


def test_tuning_honours_fill_missing_on_gappy_data(df):
    """The data check inside tune dropped fill_missing: a gap the caller allowed failed
    with 'Pass fill_missing=...' before any trial (issue 49, item 1)."""
    gappy = df.drop(index=df.index[[30, 31, 200]])
    space = {"learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}}
    fixed = {**FIXED, "max_epochs": 1}
    with pytest.raises(ValueError, match="fill_missing"):
        tune(gappy, space, n_trials=1, refit=False, **fixed)
    result = tune(gappy, space, n_trials=1, refit=False, fill_missing="nan", **fixed)
    assert len(result.study.trials) == 1 and result.best_score > 0
