"""The Optuna search (``hparams_search=optuna``): a re-run continues it, a stopped search's
trials run again, failed trials are recorded and the search goes on, and the README's
search-space overrides work as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ae_lab.cli import sweeper_param
from tests.conftest import run_ae_lab


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
def test_search_space_examples_compose(tmp_path: Path, overrides: tuple, params: dict) -> None:
    out = run_ae_lab(
        *overrides, "--cfg", "hydra", "-p", "hydra.sweeper.params", cwd=tmp_path, data_root=tmp_path
    ).stdout
    assert yaml.safe_load(out) == params
