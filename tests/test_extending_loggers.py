"""docs/extending.md's logger, carried out as written: its module and its YAML file, taken from
the page, in a folder of their own, receive a tiny run's scalars, hyperparameters with the final
metrics, and figures; a logger's module that imports a missing package stops the run at start.
The page's opening table names the files each of its examples writes, and its metric, from a
module of one's own, reaches its logger beside TensorBoard."""

from __future__ import annotations

import json
import re
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from ae_lab.callbacks.logger_packages import missing_packages
from tests.conftest import REPO, SYNTHETIC, TINY, run_in_process, scalars

DOC = REPO / "docs" / "extending.md"


def logger_files() -> dict[str, str]:
    """The code blocks of the page's logger section, by the path each opens with."""
    text = DOC.read_text()
    start = text.index("\n## A logger\n")
    section = text[start : text.index("\n## ", start + 1)]
    files = {}
    for block in re.findall(r"```(?:python|yaml)\n(.*?)```", section, re.S):
        first = block.splitlines()[0]
        assert first.startswith("# "), f"a block of {DOC.name}'s logger section names no file"
        files[first[2:].strip()] = block
    return files


@pytest.fixture
def doc_logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """The page's files written where it says, under ``tmp_path``, its module importable; the
    config folder and the logger's option name."""
    files = logger_files()
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (yaml_path,) = [p for p in files if p.endswith(".yaml")]
    assert Path(yaml_path).parent.name == "logger"
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / Path(yaml_path).parents[1], Path(yaml_path).stem
    for name in [m for m in sys.modules if m == "my_lab" or m.startswith("my_lab.")]:
        del sys.modules[name]


def test_the_page_names_a_module_and_a_logger_config():
    files = logger_files()
    assert [p for p in files if p.endswith(".py")]
    assert [p for p in files if p.endswith(".yaml") and Path(p).parent.name == "logger"]


def test_the_documented_logger_receives_scalars_settings_final_metrics_and_figures(
    doc_logger, tmp_path, synthetic_root
):
    conf, name = doc_logger
    run = run_in_process(
        f"hydra.searchpath=[file://{conf}]",
        f"logger={name}",
        "latent=4",
        "threads=1",
        *TINY,
        *SYNTHETIC,
        run_dir=tmp_path / "run",
        data_root=synthetic_root,
    )
    assert run.code == 0
    logger_cfg = run.cfg.logger[name]
    folder = tmp_path / "run" / logger_cfg.name
    lines = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    scalars = {k for line in lines for k in line.get("metrics", {})}
    assert {"train/loss", "val/loss", "test/mse"} <= scalars
    settings = [line["hyperparams"] for line in lines if "hyperparams" in line]
    assert any(s.get("latent") == 4 and s.get("model") == "ae" for s in settings)
    (final,) = [line["final"] for line in lines if "final" in line]
    assert final["test/mse"] == pytest.approx(run.metrics["test/mse"], rel=1e-5)
    figures = {line["figure"]: Path(line["png"]) for line in lines if "figure" in line}
    assert figures and all(
        png.is_file() and png.parent.name == "figures" for png in figures.values()
    )
    # the figures reached a logger that shows them: no line saying that none does
    assert "no logger of this run shows images" not in run.out


def test_the_documented_loggers_key_is_checked_from_its_annotation(
    doc_logger, tmp_path, synthetic_root
):
    conf, name = doc_logger
    run = run_in_process(
        f"hydra.searchpath=[file://{conf}]",
        f"logger={name}",
        f"logger.{name}.digits=0",
        *TINY,
        run_dir=tmp_path / "run",
        data_root=synthetic_root,
        check=False,
    )
    assert run.code == 2
    message = run.message  # one line, no traceback
    assert message.startswith(f"logger.{name}.digits must be an integer >= 1")
    assert message.endswith("got 0")


def test_a_logger_whose_module_lacks_a_package_is_named_with_the_pip_command(tmp_path, monkeypatch):
    (tmp_path / "my_trackers").mkdir()
    (tmp_path / "my_trackers" / "__init__.py").write_text("")
    (tmp_path / "my_trackers" / "remote.py").write_text("import no_such_tracker_client\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        found = missing_packages({"remote": "my_trackers.remote.RemoteLogger"})
    finally:
        for module in [m for m in sys.modules if m.startswith("my_trackers")]:
            del sys.modules[module]
    assert found == [
        "logger.remote needs the no_such_tracker_client package, which this Python lacks: "
        "pip install no_such_tracker_client"
    ]
    # a module that is not there at all is left to instantiation, which names the _target_
    assert missing_packages({"x": "my_trackers_absent.Logger"}) == []


# the page's sections, in the order of the rows of its opening table
SECTIONS = ("An autoencoder variant", "A dataset", "A metric", "A logger")


def table_files() -> list[list[str]]:
    """Each row's paths in its "files you touch" column (``<name>`` as ``*``)."""
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| a")]
    cells = [row.split(" | ")[1] for row in rows]
    return [
        [p.replace("<name>", "*") for p in re.findall(r"`([\w./<>]+/[\w./<>]+)`", c)] for c in cells
    ]


def section_paths(heading: str) -> list[str]:
    """The paths the code blocks of one section of the page open with."""
    text = DOC.read_text()
    start = text.index(f"\n## {heading}\n")
    section = text[start : text.index("\n## ", start + 1)]
    return [
        b.splitlines()[0][2:].split()[0] for b in re.findall(r"```\w+\n(.*?)```", section, re.S)
    ]


def test_the_pages_table_names_the_files_each_example_writes():
    rows = table_files()
    assert len(rows) == len(SECTIONS)
    for paths in rows:
        assert paths
        for pattern in paths:  # each names where shipped ones are
            assert list(REPO.glob(pattern)), f"{pattern}: no such file in the checkout"
    for heading, paths in zip(SECTIONS, rows, strict=True):
        written = section_paths(heading)
        assert written, heading
        for path in written:
            if path.startswith("my_lab/"):  # a module of one's own, anywhere on PYTHONPATH
                continue
            shipped = (
                "conf/" + path.removeprefix("my_conf/") if path.startswith("my_conf/") else path
            )
            assert any(fnmatch(shipped, p) for p in paths), f"{heading}: {path} not in the table"


def test_the_pages_metric_from_a_module_of_ones_own_reaches_the_pages_logger_and_tensorboard(
    doc_logger, tmp_path, synthetic_root
):
    """``+callbacks.mse_ink._target_=my_metrics.InkMSE`` (the metric's module anywhere on
    ``PYTHONPATH``) with ``logger=[tensorboard,jsonl]``, as the page writes them."""
    conf, name = doc_logger
    text = DOC.read_text()
    start = text.index("\n## A metric\n")
    metric = text[start : text.index("\n## ", start + 1)]
    (code,) = re.findall(r"```python\n(.*?)```", metric, re.S)
    (command,) = re.findall(r"`python -m ae_lab (\+callbacks\.\S+)`", metric)
    module = command.split("=", 1)[1].rsplit(".", 1)[0]
    (tmp_path / f"{module}.py").write_text(code)  # tmp_path is on sys.path (doc_logger)
    assert f"`logger=[tensorboard,{name}]`" in text
    try:
        run = run_in_process(
            f"hydra.searchpath=[file://{conf}]",
            command,
            f"logger=[tensorboard,{name}]",
            "latent=4",
            "threads=1",
            *TINY,
            *SYNTHETIC,
            run_dir=tmp_path / "run",
            data_root=synthetic_root,
        )
    finally:
        sys.modules.pop(module, None)
    value = run.metrics["test/mse_ink"]
    assert 0 < value < 1
    lines = (tmp_path / "run" / run.cfg.logger[name].name / "log.jsonl").read_text().splitlines()
    logged = [json.loads(line).get("metrics", {}) for line in lines]
    assert any(m.get("test/mse_ink") == pytest.approx(value, rel=1e-5) for m in logged)
    assert scalars(tmp_path / "run")["test/mse_ink"] == [pytest.approx(value, rel=1e-5)]


def test_lightnings_loggers_that_import_their_package_late_are_named_too(monkeypatch):
    """CometLogger's module imports without comet_ml; the run still stops at start."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "comet_ml" else real(name, *a)
    )
    assert missing_packages({"comet": "lightning.pytorch.loggers.CometLogger"}) == [
        "logger.comet needs the comet_ml package, which this Python lacks: pip install comet_ml"
    ]
    assert missing_packages({"csv": "lightning.pytorch.loggers.CSVLogger"}) == []
