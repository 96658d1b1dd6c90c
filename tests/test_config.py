"""Every config option composes and instantiates; latent reaches every model; every job of every
experiment is a valid configuration."""

import copy
import itertools
from collections.abc import Iterator

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from ae_lab.config import resolvers, validation
from ae_lab.models import AutoencoderModule
from tests.conftest import AUTOENCODERS, CLASSIFIERS, MODELS, compose_cfg, options

resolvers.register()
GROUPS = {g: options(g) for g in ("transform", "optimizer", "accelerator", "experiment")}


def test_default_config():
    cfg = compose_cfg()
    assert cfg.latent == 32 and cfg.model._target_.endswith("Autoencoder")
    assert cfg.trainer.accelerator == "auto"


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("latent", [1, 7])
def test_every_model_takes_latent(name, latent):
    cfg = compose_cfg(f"model={name}", f"latent={latent}")
    model = instantiate(cfg.model, optimizer=instantiate(cfg.optimizer), _convert_="all")
    # the tests' model list tells autoencoders from the rest by their configs
    assert isinstance(model, AutoencoderModule) == (name in AUTOENCODERS)
    if isinstance(model, AutoencoderModule):
        assert model.latent_dim == latent
        model.eval()
        x = torch.rand(3, 1, 28, 28)
        assert model.encode(x).shape == (3, latent)
        assert model(x).shape == x.shape
    assert isinstance(model.configure_optimizers(), torch.optim.Optimizer)


@pytest.mark.parametrize("name", GROUPS["transform"])
def test_every_transform_instantiates(name):
    corrupt = instantiate(compose_cfg(f"transform={name}").transform)
    x = torch.rand(2, 1, 28, 28)
    assert corrupt(x).shape == x.shape


@pytest.mark.parametrize("name", GROUPS["optimizer"])
def test_every_optimizer_takes_lr(name):
    cfg = compose_cfg(f"optimizer={name}", "optimizer.lr=0.123")
    opt = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.123)


@pytest.mark.parametrize("name", GROUPS["accelerator"])
def test_accelerator_sets_the_trainer(name):
    assert compose_cfg(f"accelerator={name}").trainer.accelerator == name


def test_groups_are_all_there():
    assert {"ae", "vae", "conv_vae"} <= set(AUTOENCODERS) and "classifier" in CLASSIFIERS
    assert {"none", "binarize", "gaussian", "mask"} <= set(GROUPS["transform"])
    assert {"adam", "adamw", "sgd"} <= set(GROUPS["optimizer"])
    assert {"auto", "cpu", "gpu"} <= set(GROUPS["accelerator"])


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        (["model=conv_vae", "latent=8"], "model=conv_vae,latent=8"),
        (["latent=8", "model=conv_vae"], "latent=8,model=conv_vae"),
        (["model=ae", "trainer.enable_progress_bar=false"], "model=ae"),
        (["transform.std=0.5", "optimizer=sgd"], "transform.std=0.5,optimizer=sgd"),
        ([], "default"),
    ],
)
def test_run_names_keep_the_order_the_user_typed(overrides, name):
    assert resolvers.run_name(overrides) == name


def test_default_profiler_costs_nothing_per_hook_and_can_be_swapped():
    from lightning.pytorch.profilers import PassThroughProfiler

    profiler = instantiate(compose_cfg().trainer.profiler)
    assert isinstance(profiler, PassThroughProfiler)  # what Lightning would use by default
    with profiler.profile("[Callback]x.on_train_batch_end") as first:
        pass
    assert first is None and profiler.profile("a") is profiler.profile("b")  # one shared no-op
    assert compose_cfg("trainer.profiler=simple").trainer.profiler == "simple"


def sweep_jobs(cfg) -> list[list[str]]:
    """The overrides of each job that the sweep in ``cfg`` runs, as Hydra's basic sweeper expands
    ``hydra.sweeper.params`` (one job, with none, for a single run)."""
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    choices = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [o.input_line]
        for o in OverridesParser.create().parse_overrides(params)
    ]
    return [list(job) for job in itertools.product(*choices)]


def job_configs(name: str) -> Iterator[tuple[list[str], DictConfig]]:
    """Each job of experiment ``name``'s sweep with its config, as Hydra composes it. The jobs
    that differ only in plain values (``seed=0,1,2``) share one composition of their group
    choices (``report_job=...``), their values then set as Hydra's override sets them."""
    experiment = compose_cfg(f"experiment={name}")
    groups = set(experiment.hydra.runtime.choices)
    parser = OverridesParser.create()
    composed: dict[tuple[str, ...], DictConfig] = {}
    for job in sweep_jobs(experiment):
        parsed = parser.parse_overrides(job)
        choices = tuple(o.input_line for o in parsed if o.key_or_group in groups)
        values = [o for o in parsed if o.key_or_group not in groups]
        if any(o.is_add() or o.is_delete() or o.is_force_add() for o in values):
            composed_job = compose_cfg(f"experiment={name}", *job)  # not a plain value
        else:
            if choices not in composed:
                composed[choices] = compose_cfg(f"experiment={name}", *choices)
            composed_job = copy.deepcopy(composed[choices])
            for o in values:
                OmegaConf.update(composed_job, o.key_or_group, o.value(), merge=True)
        yield job, composed_job


@pytest.mark.parametrize("name", GROUPS["experiment"])
def test_every_job_of_every_experiment_is_valid(name):
    for _, cfg in job_configs(name):
        validation.check_config(cfg)  # a ConfigError fails the test, naming every bad key
        validation.check_trainer(cfg)


def test_a_job_with_values_set_on_a_shared_composition_is_the_job_hydra_composes():
    """What ``job_configs`` relies on, for an experiment whose jobs differ in a plain value."""
    job, cfg = next((job, cfg) for job, cfg in job_configs("report_course") if "seed=2" in job)
    composed = compose_cfg("experiment=report_course", *job)
    for config in (cfg, composed):
        with open_dict(config):
            del config["hydra"]  # Hydra's own record of the command line, not the job's config
    assert cfg == composed and cfg.seed == 2
