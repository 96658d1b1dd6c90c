"""``hydra/launcher=ray``: a sweep's jobs as tasks on a Ray cluster, started here or named by its
address, with the records, summary and metrics of the basic launcher."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.launcher import Launcher
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict, read_write

from ae_lab.core import records
from ae_lab.data import root as data_root
from ae_lab.sweeps import ray_launch
from hydra_plugins.ae_lab.ray_launcher import RayLauncher
from tests.conftest import FAST, compose_cfg, run_ae_lab, sweep_in_process

# --- in this process, with a stand-in for Ray


def test_hydra_finds_the_launcher_and_its_settings() -> None:
    assert RayLauncher in Plugins.instance().discover(Launcher)
    cfg = compose_cfg("hydra/launcher=ray", "hydra.launcher.address=auto")
    assert cfg.hydra.launcher._target_ == ray_launch.RAY_LAUNCHER
    launcher = instantiate(cfg.hydra.launcher)
    assert isinstance(launcher, RayLauncher) and launcher.address == "auto"
    assert launcher.remote == OmegaConf.to_container(cfg.hydra.launcher.remote)
    assert launcher.local["include_dashboard"] is False


def test_without_ray_a_ray_sweep_stops_in_one_line(monkeypatch, capsys) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name)
    )
    ray_launch.RequireRay().on_multirun_start(compose_cfg("hydra/launcher=basic"))  # not Ray's
    with pytest.raises(SystemExit) as stop:
        ray_launch.RequireRay().on_multirun_start(compose_cfg("hydra/launcher=ray"))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'ae_lab[ray]'" in err
    assert err.startswith("ae_lab: hydra/launcher=ray runs the sweep on Ray")


class FakeRay(ModuleType):
    """What the launcher asks of Ray, recorded: ``init``, ``remote``, ``get``, ``cancel``."""

    class RayError(Exception):
        pass

    def __init__(self, outcomes: dict[int, object] | None = None) -> None:
        super().__init__("ray")
        self.exceptions = SimpleNamespace(RayError=FakeRay.RayError)
        self.inits: list[dict] = []
        self.options: list[dict] = []
        self.submitted: list[tuple] = []
        self.cancelled: list[int] = []
        self.outcomes = outcomes or {}  # what get() gives for the n-th task: a value or an error

    def is_initialized(self) -> bool:
        return bool(self.inits)

    def init(self, **kwargs) -> None:
        self.inits.append(kwargs)

    def remote(self, **options):
        self.options.append(options)
        ray = self

        def wrap(function):
            def submit(*args):
                ray.submitted.append(args)
                return len(ray.submitted) - 1

            return SimpleNamespace(remote=submit, function=function)

        return wrap

    def get(self, ref: int):
        outcome = self.outcomes.get(ref, "done")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def cancel(self, ref: int, force: bool = False) -> None:
        self.cancelled.append(ref)


@pytest.fixture
def fake_ray(monkeypatch):
    def install(outcomes=None) -> FakeRay:
        ray = FakeRay(outcomes)
        monkeypatch.setitem(sys.modules, "ray", ray)
        return ray

    return install


def test_a_cluster_is_started_here_small_or_the_named_one_joined(fake_ray) -> None:
    settings = dict(num_cpus=2, include_dashboard=False, object_store_memory=100_000_000)
    ray = fake_ray()
    where = ray_launch.connect(RayLauncher(**settings, init={"namespace": "mine"}))
    assert where == "a Ray cluster started on this machine"
    # "local": a new cluster, even beside one that `ray start` runs here (ray.init() joins that)
    assert ray.inits == [
        {**settings, "address": "local", "namespace": "mine", "logging_level": 30}  # WARNING
    ]
    ray = fake_ray()
    where = ray_launch.connect(RayLauncher(address="127.0.0.1:6379", **settings))
    assert where == "the Ray cluster at 127.0.0.1:6379"
    # Ray refuses a cluster's size when it joins one: that is the cluster's own
    assert ray.inits == [{"address": "127.0.0.1:6379", "logging_level": 30}]
    assert ray_launch.connect(RayLauncher()) == "the Ray cluster this process is connected to"
    assert len(ray.inits) == 1


def test_each_job_takes_the_sweeps_ae_lab_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AE_LAB_CACHE_DIR", "/cache")
    monkeypatch.setenv("AE_LAB_DATA_DIR", "/data")
    mine = {"runtime_env": {"env_vars": {"AE_LAB_CACHE_DIR": "/mine"}, "pip": ["x"]}}
    options = ray_launch.task_options({"num_cpus": 1, **mine})
    assert options["num_cpus"] == 1 and options["runtime_env"]["pip"] == ["x"]
    assert options["runtime_env"]["env_vars"]["AE_LAB_DATA_DIR"] == "/data"
    assert options["runtime_env"]["env_vars"]["AE_LAB_CACHE_DIR"] == "/mine"  # the user's wins
    # without the variable: the folder make setup recorded here, as data.root's default here
    monkeypatch.delenv("AE_LAB_DATA_DIR")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    (tmp_path / data_root.RECORD).write_text(str(tmp_path))
    env = ray_launch.task_options({})["runtime_env"]["env_vars"]
    assert env["AE_LAB_DATA_DIR"] == str(tmp_path) == compose_cfg().data.root


def launcher_for(tmp_path: Path, **settings) -> RayLauncher:
    """A set-up launcher whose jobs' configs name their overrides."""
    config = compose_cfg(run_dir=tmp_path)
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweep.dir = str(tmp_path / "sweep")

    def load_sweep_config(_, overrides):
        return OmegaConf.create({"hydra": {"job": {"name": "train"}}, "overrides": overrides})

    launcher = RayLauncher(**settings)
    context = SimpleNamespace(config_loader=SimpleNamespace(load_sweep_config=load_sweep_config))
    launcher.setup(hydra_context=context, task_function=print, config=config)
    return launcher


def test_jobs_are_numbered_across_batches_and_a_lost_task_is_a_failed_job(
    tmp_path, fake_ray, monkeypatch
) -> None:
    monkeypatch.setattr(ray_launch, "configure_log", lambda *a: None)  # pytest's logging stays
    lost = FakeRay.RayError("worker died")
    ray = fake_ray({1: lost})
    jobs = [["latent=2"], ["latent=4"], ["latent=8"]]
    launcher = launcher_for(tmp_path, num_cpus=2, remote={"num_cpus": 1})
    results = ray_launch.launch(launcher, jobs, initial_job_idx=5)
    assert [args[1].hydra.job.num for args in ray.submitted] == [5, 6, 7]
    assert [list(args[1].overrides) for args in ray.submitted] == jobs
    assert all(args[4] == os.getcwd() for args in ray.submitted)  # jobs work where the sweep does
    assert ray.options[0]["num_cpus"] == 1 and "env_vars" in ray.options[0]["runtime_env"]
    assert results[0] == results[2] == "done"
    assert results[1].status == JobStatus.FAILED and results[1].overrides == jobs[1]
    assert results[1]._return_value is lost
    assert ray.inits[0]["num_cpus"] == 2 and (tmp_path / "sweep").is_dir()


def test_a_stopped_sweep_cancels_every_task(tmp_path, fake_ray, monkeypatch) -> None:
    monkeypatch.setattr(ray_launch, "configure_log", lambda *a: None)
    ray = fake_ray({0: KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        ray_launch.launch(launcher_for(tmp_path), [["latent=2"], ["latent=4"]], 0)
    assert ray.cancelled == [0, 1]


# --- for real, on a Ray cluster on 127.0.0.1

RAY_FOOTPRINT = ("--num-cpus=2", "--include-dashboard=false", "--object-store-memory=100000000")
SWEEP = ("-m", "model=ae,vae", "latent=2", *FAST, "data.val_size=100")
QUIET_RAY = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> str:
    """A Ray cluster of 2 CPUs on 127.0.0.1, without dashboard, ended with the module."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray is None:
        pytest.fail("the Ray tests need Ray: pip install 'ae_lab[ray]'")
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("ray") / "ray.log"
    command = [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1"]
    command += [f"--port={address.split(':')[1]}", *RAY_FOOTPRINT, "--disable-usage-stats"]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **QUIET_RAY},
            start_new_session=True,  # its processes are a group of their own, ended together
        )
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # ray start --block stops what it started
        with contextlib.suppress(subprocess.TimeoutExpired):  # nothing worth a slow stop: the
            proc.wait(timeout=1)  # rest of the group is killed (it took over 5 s, 5 s idle)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def job_files(sweep: Path) -> dict[str, Path]:
    return {p.parent.name: p.parent for p in sweep.glob("*/job.json")}


def without_times(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/")}


@pytest.mark.integration
def test_a_sweep_on_ray_is_the_basic_launchers_and_a_rerun_skips_its_jobs(
    tmp_path, synthetic_root, ray_cluster, monkeypatch
) -> None:
    for key, value in QUIET_RAY.items():
        monkeypatch.setenv(key, value)

    # the basic launcher's sweep, in this process: what each job on Ray must leave
    sweep_in_process(*SWEEP[1:], sweep_dir=tmp_path / "basic", data_root=synthetic_root)
    at = f"hydra.launcher.address={ray_cluster}"
    on_ray = run_ae_lab(*SWEEP, "hydra.sweep.dir=ray", "hydra/launcher=ray", at,
                        cwd=tmp_path, data_root=synthetic_root)  # fmt: skip
    assert f"Launching 2 jobs on the Ray cluster at {ray_cluster}" in on_ray.stdout + on_ray.stderr
    basic, ray = job_files(tmp_path / "basic"), job_files(tmp_path / "ray")
    assert sorted(ray) == sorted(basic) and len(ray) == 2
    for name, job in ray.items():
        ours, theirs = records.read(job), records.read(basic[name])
        assert ours.status == theirs.status == records.COMPLETED
        assert (ours.identity, ours.overrides, ours.config) == (
            theirs.identity,
            theirs.overrides,
            theirs.config,
        )
        metrics = json.loads((job / "metrics.json").read_text())
        assert without_times(metrics) == without_times(
            json.loads((basic[name] / "metrics.json").read_text())
        )
    rows = {
        name: [without_times(r) for r in csv.DictReader((tmp_path / name / "summary.csv").open())]
        for name in ("basic", "ray")
    }
    assert rows["ray"] == rows["basic"]

    # run again (in this process, the basic launcher): every job Ray ran is skipped as
    # completed, its files untouched. A cluster the launcher starts itself (no address) is
    # test_a_cluster_is_started_here_small_or_the_named_one_joined's: a second cluster here
    # cost this test a third of its time
    files = {f: f.stat().st_mtime_ns for j in ray.values() for f in j.rglob("*") if f.is_file()}
    files = {f: t for f, t in files.items() if ".hydra" not in f.parts}
    again = sweep_in_process(*SWEEP[1:], sweep_dir=tmp_path / "ray", data_root=synthetic_root)
    assert again.out.count("completed in an earlier run of this sweep, skipped") == 2
    assert {f: f.stat().st_mtime_ns for f in files} == files
    assert all(records.read(j).status == records.COMPLETED for j in ray.values())
