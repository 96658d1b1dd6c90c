"""The config schema read from the code: a key's check and message come from the annotation of
the argument it sets (``ae_lab/config/schema.py``, ``annotations.py``), shown here on small
annotated classes the tests' configs point at; a hand rule (``ae_lab/config/rules.py``) only
says what no signature can, and none repeats one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from annotated_types import Ge, Gt, Interval, Len, MultipleOf, doc

from ae_lab.config import validation
from ae_lab.config.rule import Rule
from ae_lab.config.validation import how_to_rule, problems, settings
from ae_lab.core.errors import ConfigError
from tests.conftest import compose_cfg, run_in_process
from tests.rule_repeats import repeated_rules, to_delete
from tests.test_validation import EXEMPT


class Inner:
    """A nested config's target (``callbacks.widget.inner._target_``)."""

    def __init__(self, depth: Annotated[int, Ge(0)] = 0) -> None:
        self.depth = depth


class Widget:
    """An argument of each kind the schema reads, and one it cannot (``untyped``)."""

    def __init__(
        self,
        size: Annotated[int, Ge(1)] = 1,
        rate: Annotated[float, Interval(ge=0, lt=1), doc("the share dropped")] = 0.5,
        mode: Literal["fast", "slow"] = "fast",
        flag: bool = False,
        name: str = "w",
        widths: Sequence[Annotated[int, Ge(1)]] = (8,),
        shape: Annotated[tuple[int, ...], Len(3, 3)] = (1, 28, 28),
        limit: Annotated[int, Ge(1)] | None = None,
        step: Annotated[int, Ge(8), MultipleOf(8)] = 8,
        params: Mapping[str, Any] | None = None,
        inner: Inner | None = None,
        untyped=3,  # noqa: ANN001 - what the unruled-key test finds
    ) -> None:
        self.size = size


def annotated_sgd(
    params: Any,
    lr: Annotated[float, Gt(0)] = 0.1,
    weight_decay: Annotated[float, Ge(0)] = 0.0,
    warmup: Annotated[int, Ge(0)] = 0,
) -> None:
    """A factory the optimizer group builds as a partial (``_partial_: true``)."""


# the arguments of today's DenseVAE, ImageDataModule and PCABaseline, annotated as their modules
# will state them: what the duplicate test then asks the merge to delete from rules.py
SEED = Annotated[int, Interval(ge=0, le=2**32 - 1), doc("what lightning.seed_everything takes")]
POSITIVE = Annotated[int, Ge(1)]


class AnnotatedDenseVAE:
    def __init__(
        self,
        latent_dim: POSITIVE,
        hidden: Sequence[POSITIVE] = (512,),
        beta: Annotated[float, Ge(0), doc("the KL weight")] = 1.0,
        kl_warmup_epochs: Annotated[int, Ge(0)] = 0,
        recon_loss: Literal["bce", "mse"] = "bce",
        optimizer: Any = None,
    ) -> None: ...


class AnnotatedDataModule:
    def __init__(
        self,
        dataset: str = "mnist",
        root: str = "data",
        batch_size: POSITIVE = 128,
        eval_batch_size: POSITIVE | None = None,
        val_size: Annotated[int, Ge(1), doc("validation images taken from the training set")] = 1,
        split_seed: SEED = 42,
        seed: SEED = 0,
        corruption: Any = None,
        fast: bool = True,
        on_device: bool = True,
        num_workers: Annotated[int, Ge(0), doc("DataLoader worker processes")] = 0,
        pin_memory: bool = False,
        download: bool = True,
        binarize_target: Literal["threshold", "sample"] | None = None,
        exclude_classes: Sequence[Annotated[int, Ge(0)]] = (),
        image_shape: Annotated[Sequence[POSITIVE], Len(3, 3)] | None = None,
    ) -> None: ...


class AnnotatedPCABaseline:
    def __init__(
        self,
        n_components: Annotated[int, Interval(ge=1, le=784)]
        | Annotated[float, Interval(gt=0, lt=1)]
        | None = None,
        seed: SEED = 0,
    ) -> None: ...


ANNOTATED = (
    "model=vae",
    "model._target_=tests.test_schema.AnnotatedDenseVAE",
    "data._target_=tests.test_schema.AnnotatedDataModule",
    "callbacks.pca._target_=tests.test_schema.AnnotatedPCABaseline",
)
WIDGET = ("+callbacks.widget._target_=tests.test_schema.Widget",)
OPTIMIZER = ("optimizer._target_=tests.test_schema.annotated_sgd",)


@pytest.mark.parametrize(
    "given, message",
    [
        ("size=0", "size must be an integer >= 1, got 0"),
        ("size=true", "size must be an integer >= 1, got true"),  # a bool is no integer
        ("size=2.5", "size must be an integer >= 1, got 2.5"),
        ("rate=1", "rate must be a number in [0, 1) (the share dropped), got 1"),
        ("rate=inf", "rate must be a number in [0, 1) (the share dropped), got inf"),
        ("mode=fats", "mode must be one of fast, slow, got 'fats' (did you mean fast?)"),
        ("flag=yes", "flag must be true or false, got 'yes'"),
        ("name=5", "name must be a string, got 5"),
        ("widths=[8,0]", "widths must be a list, each an integer >= 1, got [8, 0]"),
        ("widths=8", "widths must be a list, each an integer >= 1, got 8"),
        ("shape=[1,28]", "shape must be a list of 3 items, each an integer, got [1, 28]"),
        ("limit=0", "limit must be an integer >= 1 or null, got 0"),
        ("step=12", "step must be an integer >= 8 and a multiple of 8, got 12"),
        ("params=5", "params must be a mapping or null, got 5"),
        ("inner=5", "inner must be an Inner config with _target_ or null, got 5"),
        (
            "inner._target_=tests.test_schema.Inner inner.depth=-1",
            "inner.depth must be an integer >= 0, got -1",
        ),
    ],
)
def test_an_annotation_gives_the_keys_check_and_message(tmp_path, given, message):
    """Through the entrypoint as a user runs it: one line, exit status 2, before any data."""
    settings = [f"+callbacks.widget.{s}" for s in given.split()]
    run = run_in_process(
        *WIDGET, *settings, run_dir=tmp_path / "run", data_root=tmp_path / "no_data", check=False
    )
    assert run.code == ConfigError.exit_code
    assert run.message == f"callbacks.widget.{message}"
    assert not (tmp_path / "no_data").exists() and not (tmp_path / "run").exists()


def test_a_partial_factorys_arguments_are_read_from_its_target(tmp_path):
    run = run_in_process(
        *OPTIMIZER,
        "+optimizer.warmup=-1",
        run_dir=tmp_path / "run",
        data_root=tmp_path / "no_data",
        check=False,
    )
    assert (run.code, run.message) == (2, "optimizer.warmup must be an integer >= 0, got -1")


def test_values_the_annotations_allow_pass():
    given = (
        "size=3 rate=0 mode=slow limit=null widths=[] shape=[3,32,32] step=16 params={a:1} "
        "inner._target_=tests.test_schema.Inner inner.depth=0"  # rate: an int for a float
    )
    widget = [f"+callbacks.widget.{s}" for s in given.split()]
    cfg = compose_cfg(*WIDGET, *widget, *OPTIMIZER, "+optimizer.warmup=3")
    assert problems(cfg) == []
    rules = {k: r for k, _, r in settings(cfg) if k.startswith("callbacks.widget.")}
    assert rules["callbacks.widget.params"].whole  # a mapping is checked as a whole
    assert "callbacks.widget.inner.depth" in rules  # a nested target's keys, one by one


def test_a_hand_rule_says_more_than_a_signature_and_wins():
    """``optimizer.lr`` keeps its hand rule (torch's ``lr: float | Tensor`` allows 0)."""
    found = problems(compose_cfg(*OPTIMIZER, "optimizer.lr=0"))
    assert found == ["optimizer.lr must be a number > 0 (the learning rate), got 0"]


def test_a_key_without_annotation_or_rule_names_the_file_to_fix():
    cfg = compose_cfg(*WIDGET, "+callbacks.widget.untyped=4", "+extra=1", "+model.depth=3")
    without = [k for k, _, rule in settings(cfg) if rule is None and k.split(".")[-1] not in EXEMPT]
    assert without == ["model.depth", "callbacks.widget.untyped", "extra"]
    assert [how_to_rule(cfg, k) for k in without] == [
        "model.depth: Autoencoder (ae_lab/models/autoencoder.py) takes no argument depth",
        "callbacks.widget.untyped: annotate the argument untyped of Widget in "
        "tests/test_schema.py (typing.Annotated with annotated_types, docs/extending.md)",
        "extra: add a rule to ae_lab/config/rules.py",
    ]


# ------------------------------------------------------------- no hand rule repeats an annotation
# (every shipped config: tests/test_validation.py, which composes them once for both checks)
def test_a_hand_rule_that_repeats_an_annotation_is_named_for_deletion(monkeypatch):
    rules = (
        Rule("callbacks.widget.size", "an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
        Rule("callbacks.widget.limit", "an integer >= 1", validation.RULES[0].ok, nullable=True),
        Rule("callbacks.widget.mode", "fast or slow", lambda v: v in ("fast", "slow")),
        Rule("callbacks.widget.rate", "a number in [0, 0.5]", lambda v: 0 <= v <= 0.5),
    )
    monkeypatch.setattr(validation, "RULES", (*rules, *validation.RULES))
    cfg = compose_cfg(*WIDGET, "+callbacks.widget.limit=2", "+callbacks.widget.size=2")
    repeats = repeated_rules([cfg])
    # size's rule takes True (a bool) where the annotation does not; rate's is narrower
    assert list(repeats) == ["callbacks.widget.limit"]
    assert to_delete(repeats).splitlines()[1] == (
        '  Rule("callbacks.widget.limit", ...): callbacks.widget.limit: Widget in '
        "tests/test_schema.py"
    )


def test_the_messages_of_every_kind_read_like_the_hand_rules():
    from ae_lab.config.annotations import domain

    allowed = {
        Literal["a", "b"] | None: "one of null, a, b",
        bool | None: "true, false or null",
        bool | Literal["link"]: "true, false or link",
        str | Path: "a path",
        int | float: "a number",
        Annotated[int, Interval(ge=0, le=9)]: "an integer in [0, 9]",
        Annotated[float, Gt(0)] | Sequence[Annotated[float, Gt(0)]]: (
            "a number > 0 or a list, each a number > 0"
        ),
        Annotated[list[int], Len(1, 3)]: "a list of 1 to 3 items, each an integer",
    }
    assert {t: domain(t).allowed for t in allowed} == allowed
    assert domain(Any) is None and domain(Callable[[int], int]) is None
    assert domain(Sequence[Any]) is None and domain(Annotated[int, "why"]) is None


def test_a_trained_runs_setting_is_checked_against_its_annotation():
    """``ae-lab-eval`` reads the settings a run was trained with; an annotated argument's
    (``PixelMask.p``) is checked by its annotation there too."""
    from ae_lab.config import trained_run

    good = trained_run.from_overrides(["transform=mask", "transform.p=0.25"], "overrides.yaml")
    assert trained_run.check(good, "overrides.yaml") == ["transform=mask", "transform.p=0.25"]
    bad = trained_run.from_overrides(["transform=mask", "transform.p=1.5"], "overrides.yaml")
    with pytest.raises(ConfigError) as err:
        trained_run.check(bad, "overrides.yaml")
    assert str(err.value) == (
        "overrides.yaml: transform.p must be a number in [0, 1) (the share of pixels dropped), "
        "got 1.5"
    )
