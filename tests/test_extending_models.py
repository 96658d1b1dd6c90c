"""docs/extending.md's autoencoder variant, carried out as written: its module and its YAML file,
taken from the page, in a folder of their own, train one tiny run through the entrypoint."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST, REPO, SYNTHETIC, run_in_process

DOC = REPO / "docs" / "extending.md"


def variant_files() -> dict[str, str]:
    """The code blocks of the page's variant section, by the path each opens with."""
    text = DOC.read_text()
    section = text[text.index("## An autoencoder variant") : text.index("## A dataset")]
    blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", section, re.S)
    files = {}
    for block in blocks:
        first = block.splitlines()[0]
        assert first.startswith("# "), first
        files[first[2:].strip()] = block
    return files


@pytest.fixture
def variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The page's files written where it says, under ``tmp_path``, its module importable."""
    for relative, text in variant_files().items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "my_lab" or m.startswith("my_lab.")]:
        del sys.modules[name]


def test_the_page_names_a_module_and_a_model_config():
    files = variant_files()
    assert any(p.endswith(".py") for p in files)
    assert any(p.startswith("my_conf/model/") and p.endswith(".yaml") for p in files)


def test_the_documented_variant_trains_a_tiny_step(variant, tmp_path, synthetic_root):
    torch.set_num_threads(1)
    (name,) = [Path(p).stem for p in variant_files() if p.endswith(".yaml")]
    run = run_in_process(
        f"hydra.searchpath=[file://{variant / 'my_conf'}]",
        f"model={name}",
        "latent=4",
        "model.hidden=[16]",
        "model.weight=0.1",
        *FAST,
        *SYNTHETIC,
        run_dir=tmp_path / "run",
        data_root=synthetic_root,
    )
    metrics = run.metrics
    assert math.isfinite(metrics["test/loss"]) and metrics["test/code_norm"] >= 0
    assert "train/code_norm" in metrics and "test/mse" in metrics
    # the top-level key reached the objective (a wrong key would have stopped the run)
    assert run.cfg.model.objective.weight == 0.1
