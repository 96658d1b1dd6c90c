"""A new dataset is one module and one YAML file: the example of docs/extending.md, taken from
the page as written, added beside the shipped ones (the module on the dataset package's path,
the YAML on an extra config search path), run in this process on small files written here. And
the shipped datasets: one definition and one YAML each, every list derived from them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from ae_lab.config import validation
from ae_lab.config.rule import choice
from ae_lab.core.errors import AeLabError
from ae_lab.data import ImageDataModule, datasets
from ae_lab.data.definition import dataset_names, definition, format_names
from ae_lab.run.train import CONFIG_DIR
from tests.conftest import FAST, REPO, compose_cfg, options, run_in_process, write_mnist

DOC = REPO / "docs" / "extending.md"
BLOCK = re.compile(r"```(python|yaml)\n(# (\S+)\n.*?)```", re.S)


def dataset_section() -> str:
    text = DOC.read_text()
    return text.split("\n## A dataset\n", 1)[1].split("\n## ", 1)[0]


def example_files() -> dict[str, str]:
    """The dataset example's files, by the path each block opens with."""
    return {m.group(3): m.group(2) for m in BLOCK.finditer(dataset_section())}


@pytest.fixture
def added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The example's module and YAML added as a user adds them; (dataset name, search path)."""
    files = example_files()
    module = next(p for p in files if p.startswith("ae_lab/data/datasets/"))
    config = next(p for p in files if p.startswith("conf/data/"))
    name = Path(module).stem
    assert Path(config).stem == name and name not in dataset_names()
    package = tmp_path / "datasets"
    package.mkdir()
    (package / f"{name}.py").write_text(files[module])
    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "data" / f"{name}.yaml").write_text(files[config])
    monkeypatch.setattr(datasets, "__path__", [*datasets.__path__, str(package)])
    # data.dataset's allowed values as a process started after the module was added lists them
    rules = tuple(
        choice("data.dataset", *dataset_names()) if r.key == "data.dataset" else r
        for r in validation.RULES
    )
    monkeypatch.setattr(validation, "RULES", rules)
    yield name, f"hydra.searchpath=[file://{conf}]"
    sys.modules.pop(f"ae_lab.data.datasets.{name}", None)
    definition.cache_clear()


def test_the_docs_example_is_a_module_and_a_yaml_file():
    files = example_files()
    assert sorted(Path(p).parent.as_posix() for p in files) == ["ae_lab/data/datasets", "conf/data"]


def test_the_docs_example_runs_as_written(added, tmp_path):
    name, search_path = added
    data = definition(name)
    assert data.format in format_names() and name in dataset_names()
    root = write_mnist(tmp_path / "data", folder=data.folder, seed=4)
    cfg = compose_cfg(f"data={name}", search_path)
    assert list(cfg.data.image_shape) == list(data.image_shape)
    assert validation.problems(cfg) == []
    dm = ImageDataModule(name, root=str(root), val_size=100, download=False)
    dm.setup()
    assert dm.images("test").shape == (200, *data.image_shape)
    assert dm.class_names == data.classes
    # the command the page gives, in this process
    command = re.search(r"`python -m ae_lab (data=[^`]*)`", dataset_section()).group(1).split()
    assert command[0] == f"data={name}"
    run = run_in_process(
        *command, search_path, *FAST, run_dir=tmp_path / "run", data_root=tmp_path / "data"
    )
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert 0 <= metrics["test/mse"] < 1
    assert f"{data.name} from {root / data.folder / 'raw'}" in run.out


def test_missing_files_of_ones_own_set_are_not_downloaded(added, tmp_path):
    name, _ = added
    root = tmp_path / "data"
    dm = ImageDataModule(name, root=str(root), download=True)
    with pytest.raises(AeLabError, match="ae_lab cannot download them") as err:
        dm.prepare_data()
    assert str(err.value).startswith(f"{definition(name).name} files not found in {root}/")
    assert not root.exists()  # nothing made


# --- the shipped datasets, listed from where they are defined


def test_every_definition_has_its_yaml_and_every_yaml_its_definition():
    configs = list(options("data"))
    assert configs == dataset_names()
    for name in configs:
        text = yaml.safe_load((Path(CONFIG_DIR) / "data" / f"{name}.yaml").read_text())
        assert text["dataset"] == name
        assert compose_cfg(f"data={name}").data.dataset == name


@pytest.mark.parametrize("name", dataset_names())
def test_every_definition_declares_a_known_format_and_its_shape(name):
    data = definition(name)
    assert data.format in format_names()
    shape = data.image_shape
    assert shape is None or (len(shape) == 3 and shape[0] in (1, 3) and min(shape) >= 1)
    if shape is not None:  # the config states it from the definition
        assert list(compose_cfg(f"data={name}").data.image_shape) == list(shape)
    if data.classes:
        assert len(data.classes) == data.n_classes
