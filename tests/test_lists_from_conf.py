"""The tests' lists of models, datasets, experiments, callbacks presets, loggers, transforms and
optimizers are the options of conf/: a YAML file added to a group is in the lists the tests run
and in ``--help``'s listing, and every shipped experiment composes, with as many jobs as its own
sweep declares."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode

from ae_lab.config import help as help_text
from ae_lab.run.train import CONFIG_DIR
from tests.conftest import (
    AUTOENCODERS,
    MODELS,
    autoencoders,
    compose_cfg,
    model_configs,
    options,
)
from tests.test_config import sweep_jobs

LISTED = ("model", "data", "experiment", "callbacks", "logger", "transform", "optimizer")
# a new option for each group, opening with the comment --help shows, built on a shipped one
NEW = "zz_added"
DESCRIPTION = "an option added by a test"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A copy of conf/ with one new YAML file in each listed group."""
    copy = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, copy)
    for group in LISTED:
        base = options(group, copy)[0]
        (copy / group / f"{NEW}.yaml").write_text(
            f"# {DESCRIPTION}. More after the first sentence.\ndefaults:\n  - {base}\n  - _self_\n"
        )
    return copy


def test_the_lists_are_the_options_of_conf():
    assert options("model") == MODELS and set(AUTOENCODERS) < set(MODELS)
    for group in LISTED:
        names = options(group)
        files = sorted(p.name for p in (Path(CONFIG_DIR) / group).iterdir() if p.suffix == ".yaml")
        assert names and [f"{name}.yaml" for name in names] == files


@pytest.mark.parametrize("group", LISTED)
def test_a_yaml_file_added_to_a_group_is_in_its_list_and_in_help(conf, group):
    assert NEW in options(group, conf) and NEW not in options(group)
    listing = help_text.groups(conf)
    assert f"  {group}={NEW}" in listing  # under its group, with its opening sentence
    (line,) = [x for x in listing.splitlines() if x.strip().startswith(f"{group}={NEW} ")]
    assert line.split(f"{group}={NEW}", 1)[1].strip() == DESCRIPTION
    assert f"{group}={NEW}" not in help_text.groups(Path(CONFIG_DIR))


def test_a_model_added_to_conf_is_composed_and_told_apart_like_the_shipped_ones(conf):
    configs = model_configs(conf)
    assert list(configs) == list(options("model", conf))
    base = options("model", conf)[0]
    assert configs[NEW] == configs[base]  # its defaults list was composed
    assert (NEW in autoencoders(configs)) == (base in AUTOENCODERS)


def declared_params(name: str) -> dict[str, str]:
    """``hydra.sweeper.params`` as conf/experiment/<name>.yaml writes it (none: a single run)."""
    text = yaml.safe_load((Path(CONFIG_DIR) / "experiment" / f"{name}.yaml").read_text())
    params = ((text.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    return {str(k): " ".join(str(v).split()) for k, v in params.items()}


def declared_count(params: dict[str, str]) -> int:
    """How many jobs the declared params make: the product of each one's number of values."""
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return math.prod(
        len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1 for o in parsed
    )


@pytest.mark.parametrize("name", options("experiment"))
def test_every_shipped_experiment_composes_with_the_jobs_it_declares(name):
    cfg = compose_cfg(f"experiment={name}")  # its sweep, composed once
    assert cfg.hydra.runtime.choices.experiment == name
    declared = declared_params(name)
    composed = {k: " ".join(str(v).split()) for k, v in cfg.hydra.sweeper.params.items()}
    assert composed == declared  # its own params reach the sweep, none from elsewhere
    jobs = sweep_jobs(cfg)
    assert len(jobs) == declared_count(declared)
    assert (cfg.hydra.mode == RunMode.MULTIRUN) == bool(declared)
    # a swept group choice names an option of conf/ (report_job's are in its subfolders)
    groups = set(cfg.hydra.runtime.choices)
    for job in jobs:
        for override in job:
            key, _, value = override.partition("=")
            if key in groups:
                assert (Path(CONFIG_DIR) / key / f"{value}.yaml").is_file(), override


def test_the_readmes_table_of_config_groups_names_every_option():
    """README's "Config groups" table lists each group's options by hand; it must name exactly
    the YAML files of ``conf/<group>/``, so an option added there is added to the table too."""
    import re

    from tests.conftest import REPO

    rows = re.findall(r"^\| `([\w/]+)` \| ([^|]+) \|", (REPO / "README.md").read_text(), re.M)
    checked = 0
    for group, named in rows:
        if not (Path(CONFIG_DIR) / group).is_dir():
            continue  # the table's header
        listed = set(re.findall(r"`(\w+)`", named))
        if group.startswith("hydra/"):  # Hydra's own options (basic) beside ae_lab's files
            assert set(options(group)) <= listed, group
        else:
            assert sorted(listed) == sorted(options(group)), group
        checked += 1
    assert checked >= 10
