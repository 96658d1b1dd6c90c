"""docs/extending.md's metric, carried out as written: its module and its YAML entry, in a copy
of conf/, make a run log the metric it describes."""

from __future__ import annotations

import math
import re
import shutil
import sys
from pathlib import Path

import pytest

import ae_lab.evaluation
import tests.conftest
from ae_lab.evaluation.base import Evaluation
from ae_lab.run.train import CONFIG_DIR
from tests.conftest import REPO, SYNTHETIC, TINY, run_in_process

DOC = REPO / "docs" / "extending.md"
# what the example's metric is called in the doc, and logged as
METRIC = "test/mse_ink"


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def blocks(text: str, language: str) -> list[tuple[Path, str]]:
    """Each fenced ``language`` block as (the path its first comment line names, its text)."""
    found = []
    for body in re.findall(rf"```{language}\n(.*?)```", text, re.S):
        first = body.splitlines()[0]
        assert first.startswith("# "), f"a {language} block of {DOC.name} names no file: {first}"
        found.append((Path(first[2:].split()[0]), body))
    return found


@pytest.fixture
def doc_example(tmp_path, monkeypatch) -> tuple[Path, str, str]:
    """A copy of conf/ with the doc's YAML entry added where the doc adds it, and the doc's
    module importable where the doc puts it; the copy's folder, the entry's key and the
    module's name."""
    text = section(DOC.read_text(), "A metric")
    [(module_path, code)] = blocks(text, "python")
    [(yaml_path, entry)] = blocks(text, "yaml")
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    assert yaml_path.parts[0] == "conf" and (conf / yaml_path.relative_to("conf")).is_file()
    with open(conf / yaml_path.relative_to("conf"), "a") as f:
        f.write("\n" + entry)
    assert module_path.parts[:2] == ("ae_lab", "evaluation")
    package = tmp_path / "package"
    package.mkdir()
    (package / module_path.name).write_text(code)
    monkeypatch.setattr(ae_lab.evaluation, "__path__", [*ae_lab.evaluation.__path__, str(package)])
    name = f"ae_lab.evaluation.{module_path.stem}"
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield conf, entry.splitlines()[1].rstrip(":"), name
    sys.modules.pop(name, None)


def test_the_docs_metric_is_logged_by_a_run(doc_example, tmp_path, synthetic_root, monkeypatch):
    conf, key, module = doc_example
    monkeypatch.setattr(tests.conftest, "CONFIG_DIR", str(conf))  # compose from the copy
    run = run_in_process(
        "model=ae",
        "latent=3",
        "callbacks=full",
        *(f"~callbacks.{costly}" for costly in ("downstream", "samples", "nll", "probe")),
        "callbacks.latent_map.n_points=30",
        "callbacks.latent_map.max_iter=250",
        "logger=none",
        "threads=1",
        *TINY,
        *SYNTHETIC,
        run_dir=tmp_path / "run",
        data_root=synthetic_root,
    )
    target = run.cfg.callbacks[key]._target_
    assert target.startswith(f"{module}.")  # the doc's entry names the doc's module
    assert issubclass(getattr(sys.modules[module], target.rpartition(".")[2]), Evaluation)
    value = run.metrics[METRIC]
    assert math.isfinite(value) and 0 < value < 1
    # on the ink alone: not the MSE over every pixel
    assert value != pytest.approx(run.metrics["test/mse"], rel=1e-3)
