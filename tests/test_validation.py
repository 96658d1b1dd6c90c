"""Settings out of range, unknown keys and options and non-finite losses are caught with one
message; a config error leaves no run folder behind. (Damaged data files: tests/test_data.py.)"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ae_lab.callbacks.finite_loss import NonFiniteLoss, StopOnNonFiniteLoss
from ae_lab.config import hydra_errors, resolvers, rule, validation
from ae_lab.config.validation import check_config, how_to_rule, problems, settings, trainer_problems
from ae_lab.core import run_dir
from ae_lab.core.errors import AeLabError, ConfigError
from ae_lab.data.definition import definition
from ae_lab.run.train import CONFIG_DIR
from tests.conftest import MODELS, InProcessRun, compose_cfg, run_ae_lab, run_in_process
from tests.rule_repeats import repeated_rules, to_delete

resolvers.register()

# groups inside a group's folder, chosen beside the option that uses them (not options of it)
NESTED = {("hparams_search", "pruner"): "hparams_search=optuna hparams_search/pruner="}


def _option(p: Path) -> str:
    parts = p.with_suffix("").parts
    nested = NESTED.get(parts[:2])
    return nested + "/".join(parts[2:]) if nested else f"{parts[0]}={'/'.join(parts[1:])}"


# every option of every group in conf/ (Hydra's own groups aside), e.g. report_job=auth/vae
OPTIONS = sorted(
    _option(p)
    for p in (q.relative_to(CONFIG_DIR) for q in Path(CONFIG_DIR).rglob("*.yaml"))
    if len(p.parts) > 1 and p.parts[0] != "hydra"
)
# the options of conf/model/, as the refusal of an unknown one lists them
UNKNOWN_MODEL = f"model must be one of {', '.join(MODELS)}, got 'convae' (did you mean conv_ae?)"
# keys with no rule of their own, and why they need none
EXEMPT = {
    "_target_": "Hydra's instantiate: the class to build; a wrong one fails with its own message",
    "_partial_": "Hydra's instantiate: build a factory (the optimizer and scheduler need one)",
    "_recursive_": "Hydra's instantiate: build nested configs or pass them on as they are",
}


# options that need a setting only the user can give: a folder of images needs its folder
GIVEN = {"data=folder": [f"data.path={CONFIG_DIR}"]}


@pytest.fixture(scope="module")
def shipped() -> dict[str, DictConfig]:
    """Every shipped option composed once, for the checks of each and of them all."""
    return {choice: compose_cfg(*choice.split(), *GIVEN.get(choice, [])) for choice in OPTIONS}


@pytest.mark.parametrize("choice", OPTIONS)
def test_every_shipped_config_is_valid_and_every_key_has_a_rule(choice, shipped):
    cfg = shipped[choice]
    HydraConfig.instance().set_config(cfg)  # as compose_cfg leaves it, for ${hydra:...}
    assert problems(cfg) == []
    assert trainer_problems(cfg) == []
    without = [k for k, _, rule in settings(cfg) if rule is None and k.split(".")[-1] not in EXEMPT]
    assert without == [], "\n".join(how_to_rule(cfg, k) for k in without)


def test_no_hand_rule_repeats_an_annotation(shipped):
    repeats = repeated_rules(list(shipped.values()))
    assert repeats == {}, to_delete(repeats)


def test_options_cover_every_group():
    groups = {o.split("=")[0] for o in OPTIONS}
    assert {"model", "callbacks", "logger", "experiment", "report_job", "trainer"} <= groups
    assert "report_job=auth/pca_080" in OPTIONS and "callbacks=full" in OPTIONS


def test_a_new_key_without_a_rule_is_found():
    cfg = compose_cfg("+model.depth=3", "+callbacks.pca.whiten=true")
    without = [k for k, _, rule in settings(cfg) if rule is None and k.split(".")[-1] not in EXEMPT]
    assert without == ["model.depth", "callbacks.pca.whiten"]


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["latent=0"], "latent"),
        (["latent=-4"], "latent"),
        (["latent=2.5"], "latent"),
        (["latent=abc"], "latent"),
        (["data.eval_batch_size=0"], "data.eval_batch_size"),
        (["data.val_size=0"], "data.val_size"),
        (["data=kmnist", "data.val_size=60000"], "data.val_size"),
        (["data.dataset=fmnist"], "data.dataset"),
        (["optimizer.weight_decay=-0.1"], "optimizer.weight_decay"),
        (["transform=gaussian", "transform.std=-1"], "transform.std"),
        (["transform=mask", "transform.p=1"], "transform.p"),
        (["transform=binarize", "transform.threshold=1.5"], "transform.threshold"),
        (["trainer.max_epochs=0"], "trainer.max_epochs"),
        (["model=vae", "model.beta=-1"], "model.beta"),
        (["model=sparse_ae", "model.rho=1.5"], "model.rho"),
        (["model=sparse_ae", "model.weight=-1"], "model.weight"),
        (["model=sparse_ae", "model.sparsity=l2"], "model.sparsity"),
        (["model=contractive_ae", "model.activation=tanh"], "model.activation"),
        # booleans are true or false, never a string Hydra left as it was
        (["compile=maybe"], "compile"),
        (["compile=flase"], "compile"),
        (["data.fast=yes"], "data.fast"),
        (["model=deep_ae", "model.he_init=1"], "model.he_init"),
        (["optimizer=sgd", "optimizer.nesterov=maybe"], "optimizer.nesterov"),
        (["trainer.enable_progress_bar=nope"], "trainer.enable_progress_bar"),
        (["logger.tensorboard.default_hp_metric=0"], "logger.tensorboard.default_hp_metric"),
        # seeds: what lightning.seed_everything takes
        (["seed=-1"], "seed"),
        (["seed=4294967296"], "seed"),
        (["data.split_seed=-3"], "data.split_seed"),
        (["callbacks.pca.seed=-1"], "callbacks.pca.seed"),
        # layer widths and channels
        (["model.hidden=[-5]"], "model.hidden"),
        (["model.hidden=[0]"], "model.hidden"),
        (["model.hidden=[1.5]"], "model.hidden"),
        (["model.hidden=128"], "model.hidden"),
        (["model=conv_ae", "model.channels=[]"], "model.channels"),
        (["model=conv_ae", "model.channels=[8,8,8,8,8,8]"], "model.channels"),
        (["model=classifier", "model.n_classes=1"], "model.n_classes"),
        # top level
        (["threads=0"], "threads"),
        (["matmul_precision=low"], "matmul_precision"),
        (["ckpt_path=5"], "ckpt_path"),
        (["data.num_workers=-1"], "data.num_workers"),
        (["scheduler.pct_start=1.5"], "scheduler.pct_start"),
        # the Trainer's typed arguments
        (["trainer.precision=16-mixd"], "trainer.precision"),
        (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches"),
        (["trainer.limit_val_batches=-1"], "trainer.limit_val_batches"),
        (["trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch"),
        (["trainer.log_every_n_steps=-1"], "trainer.log_every_n_steps"),
        (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val"),
        (["+trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches"),
        (["trainer.devices=0"], "trainer.devices"),
        (["trainer.accelerator=gpuu"], "trainer.accelerator"),
        (["trainer.deterministic=maybe"], "trainer.deterministic"),
        (["+trainer.logger=true"], "trainer.logger"),
        # the callbacks' settings
        (["callbacks.pca.n_components=785"], "callbacks.pca.n_components"),
        (["callbacks.pca.n_components=1.5"], "callbacks.pca.n_components"),
        (["callbacks.latent_map.n_points=1"], "callbacks.latent_map.n_points"),
        (["callbacks.latent_map.perplexity=0"], "callbacks.latent_map.perplexity"),
        (["callbacks.latent_map.max_iter=100"], "callbacks.latent_map.max_iter"),
        (["callbacks.generation.steps=1"], "callbacks.generation.steps"),
        (["callbacks.model_checkpoint.mode=low"], "callbacks.model_checkpoint.mode"),
        (["callbacks=full", "callbacks.nll.n_samples=0"], "callbacks.nll.n_samples"),
        (["callbacks=full", "callbacks.downstream.epochs=0"], "callbacks.downstream.epochs"),
        (["callbacks=full", "callbacks.probe.per_class=0"], "callbacks.probe.per_class"),
        (["callbacks=full", "callbacks.samples.confidence=1.5"], "callbacks.samples.confidence"),
    ],
)
def test_a_value_out_of_range_is_named_with_what_is_allowed(overrides, key):
    found = problems(compose_cfg(*overrides))
    assert len(found) == 1 and found[0].startswith(f"{key} must be ")
    assert f"got{overrides[-1].split('=')[1]}" in found[0].replace("'", "").replace(" ", "")


def test_the_dataset_bounds_the_validation_images_and_must_fit_the_models(monkeypatch):
    assert problems(compose_cfg("data=fashion_mnist", "data.val_size=59999")) == []
    small = dataclasses.replace(definition("kmnist"), train_images=1000)
    monkeypatch.setattr(validation, "definition", lambda name: small)
    assert problems(compose_cfg("data=kmnist")) == [
        "data.val_size must be an integer in [1, 1000) (validation images taken from KMNIST's "
        "1,000 training images), got 5000"
    ]
    # the models are built for the dataset's images, whatever their shape
    wide = dataclasses.replace(definition("kmnist"), image_shape=(3, 32, 32))
    monkeypatch.setattr(validation, "definition", lambda name: wide)
    assert problems(compose_cfg("data=kmnist")) == []


def test_a_choice_close_to_a_valid_one_is_pointed_to_it():
    assert problems(compose_cfg("model=vae", "model.recon_loss=bec")) == [
        "model.recon_loss must be one of bce, mse, got 'bec' (did you mean bce?)"
    ]


@pytest.mark.parametrize(
    "overrides",
    [["latent=785"], ["model=conv_vae", "latent=1000"], ["model=contractive_ae", "latent=785"]],
)
def test_a_bottleneck_wider_than_the_image_is_refused(overrides):
    found = problems(compose_cfg(*overrides))
    assert len(found) == 1 and found[0].startswith("latent must be at most 784")
    assert "sparse_ae" in found[0]


@pytest.mark.parametrize("overrides", [["model=sparse_ae", "latent=1000"], ["latent=784"]])
def test_an_overcomplete_sparse_code_and_a_full_width_one_are_allowed(overrides):
    assert problems(compose_cfg(*overrides)) == []


def test_a_key_that_repeats_another_is_checked_where_it_is_set():
    assert problems(compose_cfg("model.latent_dim=0")) == [
        "model.latent_dim must be an integer >= 1 (the bottleneck size; set latent=N), got 0"
    ]
    assert [p.split(" ")[0] for p in problems(compose_cfg("seed=-1"))] == ["seed"]


def test_an_unresolvable_value_is_named():
    found = problems(compose_cfg("latent=${nope}"))
    assert len(found) == 1 and found[0].startswith("latent=${nope} cannot be resolved")


def test_nesterov_needs_momentum():
    assert problems(compose_cfg("optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0"))


def test_the_copied_lightning_facts_match_lightning():
    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT
    from lightning.fabric.utilities import seed
    from lightning.pytorch.accelerators import AcceleratorRegistry

    flags = [a for arg in typing.get_args(_PRECISION_INPUT) for a in typing.get_args(arg)]
    assert sorted(map(str, rule.PRECISIONS)) == sorted(map(str, flags))
    assert (seed.min_seed_value, seed.max_seed_value) == rule.SEED_RANGE
    registry = set(AcceleratorRegistry.available_accelerators()) | {"auto", "gpu"}
    assert set(rule.ACCELERATORS) == registry


def test_every_trainer_rule_names_a_trainer_argument():
    import inspect

    import lightning as L

    arguments = set(inspect.signature(L.Trainer.__init__).parameters)
    keys = [r.key.split(".", 1)[1] for r in validation.RULES if r.key.startswith("trainer.")]
    assert all(any(validation._matches(k, a) for a in arguments) for k in keys), keys


def test_a_trainer_argument_added_with_a_typo_is_named_with_the_closest():
    cfg = compose_cfg("+trainer.max_epoch=3", "trainer.strategy=dpp", "+trainer.plugins=null")
    found = trainer_problems(cfg)
    assert found[0] == (
        "trainer.max_epoch: lightning.Trainer has no argument max_epoch (did you mean max_epochs?)"
    )
    assert found[1].startswith("trainer.strategy must be one of auto, ddp,")
    assert found[1].endswith("got 'dpp' (did you mean ddp?)") and len(found) == 2


def hydra_error(*overrides: str) -> str | None:
    with pytest.raises(Exception) as err:
        compose_cfg(*overrides)
    return hydra_errors.explain(err.value)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "model=convae",
            UNKNOWN_MODEL,
        ),
        ("optimzer.lr=1", "optimzer.lr is not a setting (did you mean optimizer.lr?)"),
        (
            "trainer.max_epoch=3",
            "trainer.max_epoch is not a setting (did you mean trainer.max_epochs?)",
        ),
        (
            "callbacks.pca.n_component=3",
            "callbacks.pca.n_component is not a setting (did you mean callbacks.pca.n_components?)",
        ),
        (
            "hydra/launcher=paralel",
            "hydra/launcher must be one of basic, joblib, parallel, ray, submitit_local, "
            "submitit_slurm, got 'paralel' (did you mean parallel?)",
        ),
    ],
)
def test_an_unknown_key_or_option_gets_the_closest_valid_name(override, message):
    assert hydra_error(override) == message


def test_an_unknown_key_far_from_any_lists_the_keys_there():
    message = hydra_error("trainer.zzz=1")
    assert message.startswith("trainer.zzz is not a setting; trainer has accelerator, benchmark,")
    assert message.endswith("(+trainer.zzz=1 adds it as a new key)") and "_target_" not in message


def test_other_hydra_errors_are_one_line_and_a_bug_is_left_alone():
    assert hydra_error("latent=[1").startswith("latent=[1: no viable alternative at input")
    assert "\n" not in hydra_error("+latent=3")
    assert hydra_errors.explain(ValueError("a bug")) is None


def startup_config(folder: Path):
    runtime = {"output_dir": str(folder)}
    return OmegaConf.create(
        {"hydra": {"output_subdir": ".hydra", "job": {"name": "train"}, "runtime": runtime}}
    )


def start_run(folder: Path) -> Path | None:
    made = run_dir.make(str(folder), "hydra.run.dir")
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text("latent: 0\n")
    (folder / "train.log").write_text("")
    (folder / "job.json").write_text("{}")
    return made


def test_a_config_error_removes_the_folders_its_run_made(tmp_path):
    folder = tmp_path / "outputs" / "2026-01-01" / "12-00-00"
    made = start_run(folder)
    assert made == tmp_path / "outputs"
    run_dir.remove_after_config_error(startup_config(folder), made, ConfigError("latent ..."))
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_existed_or_holds_more_is_kept(tmp_path):
    kept, more = tmp_path / "kept", tmp_path / "more"
    kept.mkdir()
    for folder, made in ((kept, start_run(kept)), (more, start_run(more))):
        if folder == more:
            (more / "checkpoints").mkdir()
        run_dir.remove_after_config_error(startup_config(folder), made, ConfigError("x"))
        assert (folder / "train.log").exists()
    assert run_dir.make(str(kept), "hydra.run.dir") is None
    # any other failure keeps what it wrote for the user to read
    made = start_run(tmp_path / "failed")
    run_dir.remove_after_config_error(startup_config(tmp_path / "failed"), made, AeLabError("x"))
    assert (tmp_path / "failed" / "job.json").exists()


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        check_config(compose_cfg("data.batch_size=0", "optimizer.lr=-1"))
    assert str(err.value).splitlines() == [
        "data.batch_size must be an integer >= 1, got 0",
        "optimizer.lr must be a number > 0 (the learning rate), got -1",
    ]


def test_the_first_non_finite_loss_stops_the_run_naming_its_terms():
    stop = StopOnNonFiniteLoss()
    trainer = SimpleNamespace(global_step=7, current_epoch=2)
    finite = {"loss": torch.tensor(0.5), "kl": torch.tensor(0.1)}
    stop.on_train_batch_end(trainer, None, finite, None, 0)
    bad = {"loss": torch.tensor(float("nan")), "kl": torch.tensor(float("inf"))}
    with pytest.raises(NonFiniteLoss, match="epoch 2, step 7: loss=nan, kl=inf"):
        stop.on_train_batch_end(trainer, None, bad, None, 1)


def user_run(tmp_path: Path, *overrides: str) -> InProcessRun:
    """The entrypoint as a user runs it (no HYDRA_FULL_ERROR), in this process, into
    ``tmp_path/outputs/run``, with a data root that does not exist: a config error must be found
    before any data is looked for."""
    return run_in_process(
        *overrides,
        run_dir=tmp_path / "outputs" / "run",
        data_root=tmp_path / "no_data",
        check=False,
    )


def assert_config_error(run, *lines: str) -> None:
    assert run.code == ConfigError.exit_code, run.err
    assert run.err.splitlines() == [f"ae_lab: {lines[0]}", *lines[1:]]


def test_every_bad_value_at_once_and_no_run_folder_left(tmp_path):
    run = user_run(tmp_path, "compile=maybe", "seed=-1", "model.hidden=[-5]", "latent=100000")
    assert_config_error(
        run,
        "seed must be an integer in [0, 4294967295] (what lightning.seed_everything takes), got -1",
        "compile must be true or false, got 'maybe'",
        "model.hidden must be a list, each an integer >= 1 (layer widths, e.g. [256,64]; [] for "
        "none), got [-5]",
        "latent must be at most 784 (the pixels of an image) for model=ae, got 100000; "
        "model=sparse_ae may be overcomplete",
    )
    assert list(tmp_path.iterdir()) == []  # no outputs/run/ with a config and a log


def test_a_trainer_argument_typo_is_found_before_the_data(tmp_path):
    run = user_run(tmp_path, "+trainer.max_epoch=3", "data.download=false")
    assert_config_error(
        run,
        "trainer.max_epoch: lightning.Trainer has no argument max_epoch (did you mean max_epochs?)",
    )
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_option_is_one_line_with_the_closest(tmp_path):
    assert_config_error(user_run(tmp_path, "model=convae"), UNKNOWN_MODEL)


@pytest.mark.integration
def test_the_command_turns_hydras_own_errors_into_one_line(tmp_path):
    """What only the process shows: ``python -m ae_lab`` routes Hydra's report of the command
    line through ``hydra_errors`` (``install``), with no traceback."""
    proc = run_ae_lab(
        "model=convae", cwd=tmp_path, data_root=tmp_path / "no_data", check=False, full_error=False
    )
    assert proc.returncode == ConfigError.exit_code, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [f"ae_lab: {UNKNOWN_MODEL}"]


def test_a_run_dir_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    run = run_in_process(
        run_dir=tmp_path / "a_file" / "run", data_root=tmp_path / "no_data", check=False
    )
    assert run.code != 0
    assert run.err.splitlines() == [
        f"ae_lab: hydra.run.dir={tmp_path}/a_file/run cannot be created: Not a directory"
    ]
