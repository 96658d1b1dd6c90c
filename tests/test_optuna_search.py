"""The Optuna search (``hparams_search=optuna``): a re-run continues it, a stopped search's
trials run again, failed trials are recorded and the search goes on, and the README's
search-space overrides work as written."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ae_lab.core.errors import ConfigError
from ae_lab.run.cli import sweeper_param
from ae_lab.sweeps import optuna_trials
from ae_lab.sweeps.optuna_search import OptunaSearch
from ae_lab.sweeps.optuna_trials import (
    OWNER,
    STALE_S,
    continued_sampler,
    fail_and_retry,
    latest_attempts,
    stale_reason,
)
from tests.conftest import FAST, ae_lab_command, compose_cfg, sweep_in_process

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("typed", "passed"),
    [
        (
            "hydra.sweeper.params.latent=choice(8,16,32)",
            "++hydra.sweeper.params={latent:'choice(8,16,32)'}",
        ),
        (
            "+hydra.sweeper.params.optimizer.lr=tag(log, interval(1e-3, 1e-2))",
            "++hydra.sweeper.params={optimizer.lr:'tag(log, interval(1e-3, 1e-2))'}",
        ),
        ('hydra.sweeper.params.model="ae,vae"', '++hydra.sweeper.params={model:"ae,vae"}'),
        ("hydra.sweeper.params.name=it's", '++hydra.sweeper.params={name:"it\'s"}'),
        ("hydra.sweeper.n_trials=3", "hydra.sweeper.n_trials=3"),
        ("~hydra.sweeper.params.latent", "~hydra.sweeper.params.latent"),
    ],
)
def test_search_space_overrides_reach_the_sweeper_as_text(typed: str, passed: str) -> None:
    assert sweeper_param(typed) == passed


@pytest.mark.parametrize(
    ("overrides", "params"),
    [
        (  # README, Scaling out: a key added to the Optuna search space, and a dotted one changed
            (
                "hparams_search=optuna",
                "hydra.sweeper.params.latent=choice(8,16,32)",
                "hydra.sweeper.params.optimizer.lr=tag(log, interval(1e-3, 1e-2))",
            ),
            {
                "optimizer.lr": "tag(log, interval(1e-3, 1e-2))",
                "data.batch_size": "choice(64, 128, 256)",
                "latent": "choice(8,16,32)",
            },
        ),
        (  # docs/evaluation.md: an experiment's sweep with other values, quoted or not
            ("experiment=latent_sweep", 'hydra.sweeper.params.model="ae,vae"'),
            {"model": "ae,vae", "latent": "2,4,8,16,32,64"},
        ),
        (("hydra.sweeper.params.latent=2,4",), {"latent": "2,4"}),
    ],
)
def test_search_space_examples_compose(overrides: tuple, params: dict) -> None:
    cfg = compose_cfg(*(sweeper_param(o) for o in overrides))  # as the ae-lab command passes them
    assert OmegaConf.to_container(cfg.hydra.sweeper.params) == params


def _running_trial(study: optuna.Study, owner: dict | None) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    if owner is not None:
        trial.set_user_attr(OWNER, {"number": trial.number, **owner})
    return study.get_trials(deepcopy=False)[-1]


def test_a_trial_is_stale_once_its_search_is_gone() -> None:
    study = optuna.create_study()
    ended = subprocess.Popen(["true"])
    ended.wait()
    now = time.time()
    here = {"host": "here", "beat": now}
    assert stale_reason(_running_trial(study, {**here, "pid": os.getppid()}), now, "here") is None
    assert "ended" in stale_reason(_running_trial(study, {**here, "pid": ended.pid}), now, "here")
    elsewhere = {"host": "there", "pid": ended.pid}
    assert stale_reason(_running_trial(study, {**elsewhere, "beat": now}), now, "here") is None
    old = now - STALE_S - 1
    assert "silent" in stale_reason(_running_trial(study, {**elsewhere, "beat": old}), now, "here")
    # no record of its own: the time since it started decides
    assert stale_reason(_running_trial(study, None), now, "here") is None
    assert stale_reason(_running_trial(study, None), now + STALE_S + 1, "here") is not None


def test_a_retried_trial_counts_once_with_its_parameters() -> None:
    study = optuna.create_study()
    first = _running_trial(study, None)
    fail_and_retry(study, first)
    retry = study.ask()
    assert retry.suggest_float("x", 0, 1) == first.params["x"]
    study.tell(retry, 1.0)
    fail_and_retry(study, _running_trial(study, None))
    latest = latest_attempts(study.get_trials(deepcopy=False))
    assert [(t.number, t.state) for t in latest] == [
        (1, TrialState.COMPLETE),
        (3, TrialState.WAITING),
    ]


def test_a_running_trial_keeps_its_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optuna_trials, "HEARTBEAT_S", 0.01)
    study = optuna.create_study()
    trial = study.ask()
    with optuna_trials.Heartbeat([trial], "here"):
        time.sleep(0.2)
    owner = study.get_trials(deepcopy=False)[0].user_attrs[OWNER]
    assert owner["host"] == "here" and owner["pid"] == os.getpid() and owner["number"] == 0
    assert time.time() - owner["beat"] < 0.2


SETTINGS = {
    "sampler": None,
    "direction": "minimize",
    "storage": None,
    "study_name": None,
    "n_trials": 3,
    "n_jobs": 1,
    "max_failure_rate": 0.25,
    "custom_search_space": None,
    "params": None,
}


@pytest.mark.parametrize(
    ("setting", "value"), [("max_failure_rate", 1.5), ("n_trials", 0), ("n_jobs", 0)]
)
def test_search_settings_out_of_range_are_refused(setting: str, value: float) -> None:
    search = OptunaSearch(**{**SETTINGS, setting: value})
    with pytest.raises(ConfigError, match=f"hydra.sweeper.{setting}="):
        search._check_settings()


def test_a_stopped_search_queues_its_running_trials_again() -> None:
    """Ctrl-C or SIGTERM during a batch: its trials are failed and queued with their parameters,
    and the stop goes on."""

    class Stopped:
        def launch(self, overrides: list, initial_job_idx: int) -> list:
            raise SystemExit(143)

    search = OptunaSearch(**SETTINGS)
    search.launcher = Stopped()
    study = optuna.create_study()
    trials = [search._ask(study) for _ in range(2)]
    params = [t.suggest_float("x", 0, 1) for t in trials]
    with pytest.raises(SystemExit):
        search._run(study, trials, [("x=1",), ("x=2",)])
    latest = latest_attempts(study.get_trials(deepcopy=False))
    assert [t.state for t in latest] == [TrialState.WAITING] * 2
    assert [t.params["x"] for t in latest] == params


def test_the_sampler_seed_moves_on_with_the_study() -> None:
    cfg = OmegaConf.create({"_target_": "optuna.samplers.TPESampler", "seed": 0})
    assert continued_sampler(cfg, 0) is None
    assert continued_sampler(OmegaConf.create({**cfg, "seed": None}), 5) is None

    def first_draw(sampler: optuna.samplers.BaseSampler) -> float:
        return optuna.create_study(sampler=sampler).ask().suggest_float("x", 0, 1)

    again = first_draw(continued_sampler(cfg, 3))
    assert again != first_draw(optuna.samplers.TPESampler(seed=0))
    assert again == first_draw(continued_sampler(cfg, 3))


def _trials(db: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="ae_lab", storage=f"sqlite:///{db}").trials


def _states(db: Path) -> list[str]:
    try:
        return sorted(t.state.name for t in _trials(db))
    except Exception:  # noqa: BLE001 - not created yet
        return []


def _param_sets(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in trials]


@pytest.mark.integration
def test_a_killed_search_run_again_reaches_n_trials_with_new_trials(
    tmp_path: Path, mnist_root: Path
) -> None:
    """Killed (SIGKILL) while its second trial runs, the search run again retries that trial
    with its parameters and draws one new trial: 3 completed trials, all different."""
    db, sweep = tmp_path / "optuna.db", tmp_path / "search"
    args = (
        "hparams_search=optuna",
        "model=sparse_ae",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweeper.storage=sqlite:///{db}",
        f"hydra.sweep.dir={sweep}",
        "+callbacks.stall._target_=tests.probes.StallAfterFirstJob",
        *FAST,
    )
    cmd = ae_lab_command(*args, data_root=mnist_root)
    stall = tmp_path / "stall"
    env = {**cmd["env"], "AE_LAB_PROBE_STALL": str(stall)}
    proc = subprocess.Popen(
        cmd["args"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.time() + 300
        while not stall.with_suffix(".stalled").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "the search never reached its second trial"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    assert _states(db) == ["COMPLETE", "RUNNING"]
    killed = [t for t in _trials(db) if t.state == TrialState.RUNNING][0]

    sweep_in_process(*args, data_root=mnist_root)  # run again, in this process
    trials = _trials(db)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert len(set(_param_sets(complete))) == 3
    assert killed.params in [t.params for t in complete]
    assert [t.state for t in trials if t.state != TrialState.COMPLETE] == [TrialState.FAIL]
    summary = (sweep / "summary.md").read_text()
    assert summary.count("| completed |") == 3 and "| incomplete |" not in summary


@pytest.mark.integration
def test_a_failed_trial_is_recorded_and_the_search_goes_on(
    tmp_path: Path, mnist_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first trial fails; the search records it, runs the other two over the README's
    search-space overrides and exits 0. Run again with a failure budget that one failed trial
    exceeds, it stops at once with one line."""
    db, sweep = tmp_path / "optuna.db", tmp_path / "search"
    args = (
        "hparams_search=optuna",
        f"hydra.sweeper.storage=sqlite:///{db}",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweeper.params.latent=choice(8,16,32)",
        "hydra.sweeper.params.optimizer.lr=tag(log, interval(1e-3, 1e-2))",
        "+callbacks.fail._target_=tests.probes.FailFirstJob",
        *FAST,
    )
    monkeypatch.setenv("AE_LAB_PROBE_FAIL", str(tmp_path / "failed"))
    sweep_in_process(
        *args,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.max_failure_rate=0.5",
        data_root=mnist_root,
    )
    trials = _trials(db)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert all(t.params["latent"] in (8, 16, 32) for t in trials)
    assert all(1e-3 <= t.params["optimizer.lr"] <= 1e-2 for t in trials)
    summary = (sweep / "summary.md").read_text()
    assert summary.count("| completed |") == 2 and summary.count("| failed |") == 1
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"latent", "optimizer.lr", "data.batch_size"}

    over = sweep_in_process(
        *args,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.max_failure_rate=0.2",
        data_root=mnist_root,
        check=False,
    )
    assert over.code == 1 and over.error is None
    assert over.err.splitlines()[-1].startswith("ae_lab: study ae_lab: 1 failed trial(s)")
    assert "max_failure_rate=0.2" in over.err and "Traceback" not in over.err
    assert len(_trials(db)) == 3
