"""The Optuna search (``hparams_search=optuna``) on Optuna's current release, through ae_lab's own
sweeper: the search space read from Hydra's expressions, the study in SQLite (in the sweep dir
by default), a search run again continuing to ``n_trials``, the failure budget, and pruning: the
job reports to its trial, hopeless trials stop after an epoch and are recorded as pruned in the
study, in job.json and in the sweep summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ae_lab.core.errors import AeLabError, ConfigError
from ae_lab.core.identity import identity
from ae_lab.run.train import train
from ae_lab.sweeps import optuna_space
from ae_lab.sweeps.optuna_search import OptunaSearch
from ae_lab.sweeps.optuna_study import storage_url
from ae_lab.sweeps.optuna_trials import OWNER, TRIAL_ENV, make_pruner, trial_overrides
from tests.conftest import FAST, compose_cfg, run_ae_lab, sweep_in_process

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_optuna_is_its_current_major_release() -> None:
    assert int(optuna.__version__.split(".")[0]) >= 5


def test_search_space_expressions_become_optuna_distributions() -> None:
    space, fixed = optuna_space.parse(
        [
            "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
            "data.batch_size=choice(64, 128, 256)",
            "latent=range(4, 8, 2)",
            "model.beta=interval(0.25, 4)",
            "model.weight=interval(1, 5)",
            "threads=1",
            # the command line after hydra.sweeper.params: the later wins, the key keeps its place
            "data.batch_size=choice(32, 64)",
        ]
    )
    assert list(space) == [
        "optimizer.lr",
        "data.batch_size",
        "latent",
        "model.beta",
        "model.weight",
    ]
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["data.batch_size"] == CategoricalDistribution([32, 64])
    assert space["latent"] == IntDistribution(4, 8, step=2)
    assert space["model.beta"] == FloatDistribution(0.25, 4.0)
    assert space["model.weight"] == FloatDistribution(1, 5)  # Hydra: float bounds
    assert fixed == {"threads": "1"}


def test_storage_is_reachable_from_every_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert storage_url(None, "multirun/x") == f"sqlite:///{tmp_path}/multirun/x/optuna.db"
    assert storage_url("sqlite:///optuna.db", "s") == f"sqlite:///{tmp_path}/optuna.db"
    assert storage_url("sqlite:////abs/o.db", "s") == "sqlite:////abs/o.db"
    assert storage_url("postgresql://u@h/db", "s") == "postgresql://u@h/db"


def test_a_trial_reaches_its_job_through_hydras_settings_not_its_overrides() -> None:
    """The trial's storage, study and number are set in the job's environment: its folder name,
    task overrides and identity stay those of its parameters, so a retry resumes in place."""
    storage = "sqlite:////tmp/it's a dir/optuna.db"
    cfg = compose_cfg("hparams_search=optuna", "latent=8", *trial_overrides(storage, "s 1", 7))
    assert dict(cfg.hydra.job.env_set) == {
        TRIAL_ENV["storage"]: storage,
        TRIAL_ENV["study"]: "s 1",
        TRIAL_ENV["trial"]: "7",
    }
    assert list(cfg.hydra.overrides.task) == ["hparams_search=optuna", "latent=8"]


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"n_trails": 3}, "n_trails"),
        ({"direction": "down"}, "direction"),
        ({"n_jobs": 0}, "n_jobs"),
    ],
)
def test_a_wrong_setting_is_refused_by_its_key(settings: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^hydra\.sweeper\.{key}"):
        OptunaSearch(**settings)._check_settings()


def test_a_jobs_identity_leaves_out_the_pruner(tmp_path: Path) -> None:
    """A job the pruner let finish has the results it would have had without one: it matches
    its earlier runs whatever the pruner, and a job of the same values outside a search."""
    job = ("optimizer.lr=0.001", "data.batch_size=64")

    def ident(*overrides: str) -> str:
        return identity(compose_cfg(*overrides, *job, run_dir=tmp_path), tmp_path)[0]

    median = ident("hparams_search=optuna")
    assert median == ident("hparams_search=optuna", "hparams_search/pruner=hyperband")
    assert median == ident("hydra/sweeper=optuna_search")
    assert median != ident("hparams_search=optuna", "latent=8")


class FakeLauncher:
    """Runs no job: each returns ``optimizer.lr`` as its value, or raises what ``outcome`` says
    for its trial number (read from the overrides that tell the job its trial)."""

    def __init__(self, outcome: dict[int, BaseException] | None = None) -> None:
        self.outcome = outcome or {}
        self.launched: list[tuple[str, ...]] = []

    def launch(self, overrides: list, initial_job_idx: int) -> list[JobReturn]:
        returns = []
        for job in overrides:
            self.launched.append(job)
            values = dict(o.split("=", 1) for o in job)
            number = int(values[f"++hydra.job.env_set.{TRIAL_ENV['trial']}"].strip("'"))
            error = self.outcome.get(number)
            status = JobStatus.FAILED if error else JobStatus.COMPLETED
            value = error or float(values["optimizer.lr"])
            returns.append(JobReturn(overrides=list(job), status=status, _return_value=value))
        return returns


def _search(cfg: DictConfig, launcher: FakeLauncher, **settings) -> OptunaSearch:
    sweeper = cfg.hydra.sweeper
    search = OptunaSearch(
        sampler=optuna.samplers.TPESampler(seed=0),
        direction=sweeper.direction,
        storage=sweeper.storage,
        study_name=sweeper.study_name,
        n_trials=sweeper.n_trials,
        n_jobs=sweeper.n_jobs,
        max_failure_rate=sweeper.max_failure_rate,
        params=sweeper.params,
        **settings,
    )
    search.config, search.launcher = cfg, launcher
    return search


def _study(sweep: Path) -> optuna.Study:
    return optuna.load_study(study_name="ae_lab", storage=f"sqlite:///{sweep}/optuna.db")


def test_a_search_run_again_continues_to_n_trials_with_new_values(tmp_path: Path) -> None:
    """Without a storage the study is kept in the sweep dir: run again into it, the search
    runs only the trials missing from n_trials, with values it has not tried."""
    sweep = tmp_path / "search"
    launcher = FakeLauncher()
    for n_trials in (3, 5, 5):
        cfg = compose_cfg(
            "hparams_search=optuna",
            f"hydra.sweep.dir={sweep}",
            f"hydra.sweeper.n_trials={n_trials}",
            "hydra.sweeper.n_jobs=2",
        )
        _search(cfg, launcher).sweep([])
    trials = _study(sweep).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 5
    assert len(launcher.launched) == 5
    # each job has its parameters, then the study's coordinates as Hydra settings
    assert all(job[0].startswith("optimizer.lr=") for job in launcher.launched)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == min(t.value for t in trials)


def test_a_pruned_job_is_a_pruned_trial_and_no_failure(tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    cfg = compose_cfg(
        "hparams_search=optuna",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.max_failure_rate=0",
    )
    launcher = FakeLauncher({1: optuna.TrialPruned("pruned"), 3: optuna.TrialPruned("pruned")})
    _search(cfg, launcher).sweep([])
    states = [t.state for t in _study(sweep).trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED] * 2


def test_failed_trials_beyond_the_budget_stop_the_search(tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    cfg = compose_cfg(
        "hparams_search=optuna",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.max_failure_rate=0.25",
    )
    launcher = FakeLauncher({0: AeLabError("a"), 1: AeLabError("b")})
    with pytest.raises(AeLabError, match=r"2 failed trial\(s\) \(numbers \[0, 1\]\)"):
        _search(cfg, launcher)._search([])
    assert [t.state for t in _study(sweep).trials] == [TrialState.FAIL] * 2


def test_a_dead_searchs_running_trial_runs_again_with_its_parameters(tmp_path: Path) -> None:
    """A trial left RUNNING by a search whose process has ended does not block the study: it is
    failed, retried with the same parameters, and counts once."""
    sweep = tmp_path / "search"
    cfg = compose_cfg(
        "hparams_search=optuna", f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=2"
    )
    sweep.mkdir()
    study = optuna.create_study(study_name="ae_lab", storage=storage_url(None, sweep))
    dead = study.ask()
    lr = dead.suggest_float("optimizer.lr", 1e-4, 1e-2, log=True)
    dead.suggest_categorical("data.batch_size", [64, 128, 256])
    dead.set_user_attr(OWNER, {"host": "h", "pid": 1, "number": 0, "beat": 0.0})
    _search(cfg, FakeLauncher()).sweep([])
    trials = _study(sweep).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].params["optimizer.lr"] == lr


# ---------------------------------------------------------------- pruning inside a job


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_a_pruner_is_chosen_by_option_or_by_name(name: str, kind: type) -> None:
    cfg = compose_cfg("hparams_search=optuna", f"hparams_search/pruner={name}")
    assert type(make_pruner(cfg.hparams_search.pruner)) is kind
    cfg = compose_cfg("hparams_search=optuna", f"hparams_search.pruner={name}")
    assert type(make_pruner(cfg.hparams_search.pruner)) is kind


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hparams_search.pruner=bogus", r"hparams_search\.pruner=bogus: give median, hyperband"),
        ("+hparams_search.pruner.n_startup_trial=1", r"hparams_search\.pruner: .*n_startup_trial"),
    ],
)
def test_a_wrong_pruner_is_refused_before_any_job_runs(
    tmp_path: Path, override: str, message: str
) -> None:
    cfg = compose_cfg("hparams_search=optuna", f"hydra.sweep.dir={tmp_path}", override)
    launcher = FakeLauncher()
    with pytest.raises(ConfigError, match=f"^{message}"):
        _search(cfg, launcher)._check_settings()
    assert not launcher.launched


def _trial_in(db: Path, first_values: dict[int, float], monkeypatch: pytest.MonkeyPatch):
    """A study whose first trial completed with ``first_values`` after each epoch, and a second
    trial running, which the job in this process is told to run."""
    storage = f"sqlite:///{db}"
    study = optuna.create_study(study_name="s", storage=storage)
    study.add_trial(
        optuna.trial.create_trial(
            value=first_values[max(first_values)],
            intermediate_values=first_values,
        )
    )
    trial = study.ask()
    for key, value in {"storage": storage, "study": "s", "trial": str(trial.number)}.items():
        monkeypatch.setenv(TRIAL_ENV[key], value)
    return study, trial.number


def _job_cfg(tmp_path: Path, synthetic_root: Path) -> DictConfig:
    return compose_cfg(
        "hparams_search=optuna",
        f"data.root={synthetic_root}",
        "data.val_size=100",
        "hparams_search.pruner.n_startup_trials=1",
        "trainer.max_epochs=2",
        *FAST,
        run_dir=tmp_path / "run",
    )


def test_a_hopeless_trial_stops_after_its_first_epoch(
    tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Median pruning: worse after epoch 0 than the completed trial was, the job stops there."""
    study, number = _trial_in(tmp_path / "o.db", {0: 1e-9, 1: 1e-9}, monkeypatch)
    with pytest.raises(optuna.TrialPruned, match="epoch 0"):
        train(_job_cfg(tmp_path, synthetic_root))
    trial = study.trials[number]
    assert list(trial.intermediate_values) == [0] and trial.intermediate_values[0] > 1e-9
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_promising_trial_reports_every_epoch_and_completes(
    tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, number = _trial_in(tmp_path / "o.db", {0: 1e9, 1: 1e9}, monkeypatch)
    metrics = train(_job_cfg(tmp_path, synthetic_root))
    reported = study.trials[number].intermediate_values
    assert list(reported) == [0, 1]
    assert reported[1] == pytest.approx(metrics["val/mse"])


def test_outside_a_search_the_pruning_callback_does_nothing(
    tmp_path: Path, synthetic_root: Path
) -> None:
    cfg = compose_cfg(
        "hparams_search=optuna",
        f"data.root={synthetic_root}",
        "data.val_size=100",
        "hparams_search/pruner=none",
        "hparams_search.pruner._target_=tests.optuna_probes.PruneAfterFirstTrial",
        *FAST,
        run_dir=tmp_path / "run",
    )
    assert "val/mse" in train(cfg)


# ---------------------------------------------------------------- the whole search, as run


def _statuses(sweep: Path) -> list[str]:
    return sorted(json.loads(p.read_text())["status"] for p in sweep.glob("*/job.json"))


PRUNE_AFTER_FIRST = (
    "hparams_search/pruner=none",
    "hparams_search.pruner._target_=tests.optuna_probes.PruneAfterFirstTrial",
)


def test_a_search_prunes_trials_and_records_them_pruned(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """Through the entrypoint (in this process), with the study in the sweep dir: every trial
    after the first is pruned after its first epoch; the study, each job.json, the summary and
    its last line say pruned, the search exits 0 with the completed trial as the best. Run again
    with a larger n_trials, it continues the study with a new trial, which is pruned too."""
    sweep = tmp_path / "search"
    args = (
        "hparams_search=optuna",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweeper.params.latent=range(4, 8, 2)",
        *PRUNE_AFTER_FIRST,
        f"data.root={synthetic_root}",
        "data.val_size=100",
        "trainer.max_epochs=2",
        *FAST,
    )
    search = sweep_in_process(*args, "hydra.sweeper.n_trials=3", data_root=synthetic_root)
    trials = _study(sweep).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    assert [list(t.intermediate_values) for t in trials] == [[0, 1], [0], [0]]
    assert all(t.params["latent"] in (4, 6, 8) for t in trials)
    assert _statuses(sweep) == ["completed", "pruned", "pruned"]
    summary = (sweep / "summary.md").read_text()
    assert summary.count("| pruned |") == 2 and "## Failures" not in summary
    assert re.search(r"sweep finished: 1 completed, 0 failed, 2 pruned", search.err + search.out)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_params"] == trials[0].params

    sweep_in_process(*args, "hydra.sweeper.n_trials=4", data_root=synthetic_root)
    trials = _study(sweep).trials
    assert [t.state for t in trials][3:] == [TrialState.PRUNED]
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    assert _statuses(sweep) == ["completed", "pruned", "pruned", "pruned"]


@pytest.mark.integration
def test_jobs_in_other_processes_report_to_their_trials(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """With the parallel launcher (joblib's worker processes), two trials at once, each job
    loads its own trial from the SQLite storage named on the command line."""
    sweep, db = tmp_path / "search", tmp_path / "optuna.db"
    run_ae_lab(
        "hparams_search=optuna",
        "hydra/launcher=parallel",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.storage=sqlite:///optuna.db",
        f"hydra.sweep.dir={sweep}",
        *PRUNE_AFTER_FIRST,
        f"data.root={synthetic_root}",
        "data.val_size=100",
        "trainer.max_epochs=2",
        *FAST,
        cwd=tmp_path,
        data_root=synthetic_root,
    )
    trials = optuna.load_study(study_name="ae_lab", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert [list(t.intermediate_values) for t in trials] == [[0, 1], [0]]
    assert _statuses(sweep) == ["completed", "pruned"]
