"""The headline metrics: which final metrics a run is judged by, and where each is shown.

One list for the line a run ends with, the columns of a sweep's ``summary.md``, the metrics of
TensorBoard's HPARAMS tab and the job tables of the results page. Adding a metric to all of them
is one line in ``HEADLINE``; every other metric a run logs is still in its ``metrics.json``,
``summary.csv`` and logger. Each metric says how its values are written and which way is better,
which is what the tables that put ae_lab's figures next to published ones need.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# where a headline metric is shown
RUN_END = "run_end"  # the block a run ends with (ae_lab/reporting/run_end.py)
SUMMARY = "summary"  # the table of a sweep's summary.md
HPARAMS = "hparams"  # beside the hyperparameters (TensorBoard's HPARAMS tab)
RESULTS = "results"  # the job tables of the results page
EVERYWHERE = frozenset({RUN_END, SUMMARY, HPARAMS, RESULTS})
TABLES = frozenset({SUMMARY, RESULTS})

LOWER, HIGHER = "lower", "higher"
NUMBER, SHARE, COUNT = "{:.4g}", "{:.2%}", "{:,.0f}"

# the model against PCA with as many components as its latent size: below 1, the model wins
RATIO = "test/mse_ratio"


@dataclass(frozen=True)
class HeadlineMetric:
    name: str  # as logged
    label: str  # what it measures, in words
    form: str = NUMBER  # how a value is written (a format string)
    better: str | None = LOWER  # None: a count to match, not to beat
    shown: frozenset[str] = EVERYWHERE

    def format(self, value: float) -> str:
        return self.form.format(value)


def _only(*places: str) -> frozenset[str]:
    return frozenset(places)


HEADLINE = (
    HeadlineMetric("val/mse", "validation MSE", shown=_only(HPARAMS)),
    HeadlineMetric("val/acc", "validation accuracy", SHARE, HIGHER, _only(HPARAMS)),
    HeadlineMetric("pca/n_components", "PCA components", better=None, shown=_only(RESULTS)),
    HeadlineMetric("test/loss", "the model's objective on the test set", shown=_only(RUN_END)),
    HeadlineMetric("test/mse", "test MSE against the clean image"),
    HeadlineMetric("pca/test_mse", "PCA's test MSE, as many components as the latent size"),
    HeadlineMetric(
        RATIO,
        "test/mse / pca/test_mse (PCA with as many components as the latent size; below 1: "
        "the model beats PCA)",
    ),
    HeadlineMetric("test/nll", "a VAE's test negative log-likelihood, nats"),
    # the K of every test/nll figure, in the tables beside it
    HeadlineMetric("test/nll_k", "importance samples per image of test/nll", COUNT, None, TABLES),
    HeadlineMetric("test/acc", "the classifier's test accuracy", SHARE, HIGHER),
    HeadlineMetric("downstream/acc_original", "a classifier on the test images", SHARE, HIGHER),
    HeadlineMetric("downstream/acc_recon", "on the model's reconstructions", SHARE, HIGHER),
    HeadlineMetric("downstream/acc_pca", "on PCA's reconstructions", SHARE, HIGHER),
    HeadlineMetric(
        "probe/acc", "linear probe of the codes, all labels (classes trained on)", SHARE, HIGHER
    ),
    HeadlineMetric("pca/probe_acc", "linear probe of PCA's codes, all labels", SHARE, HIGHER),
    HeadlineMetric(
        "probe/acc_100",
        "linear probe, 100 labels per class",
        SHARE,
        HIGHER,
        _only(SUMMARY, HPARAMS),
    ),
    HeadlineMetric(
        "pca/probe_acc_100",
        "PCA's codes, 100 labels per class",
        SHARE,
        HIGHER,
        _only(SUMMARY, HPARAMS),
    ),
    HeadlineMetric(
        "probe/acc_55",
        "linear probe, 55 labels per class (550 in all, as ae_bakeoff)",
        SHARE,
        HIGHER,
        _only(SUMMARY, HPARAMS),
    ),
    HeadlineMetric(
        "pca/probe_acc_55",
        "PCA's codes, 55 labels per class",
        SHARE,
        HIGHER,
        _only(SUMMARY, HPARAMS),
    ),
    HeadlineMetric(
        "samples/fd", "Frechet distance of prior samples to test images (classifier features)"
    ),
    # the scale of samples/fd: what two halves of the test set score at the same N
    HeadlineMetric(
        "samples/fd_floor", "samples/fd's floor: two disjoint halves of the test images"
    ),
    HeadlineMetric(
        "samples/confident",
        "prior samples classified with p >= 0.9",
        SHARE,
        HIGHER,
        _only(SUMMARY, HPARAMS),
    ),
    HeadlineMetric(
        "samples/class_entropy",
        "entropy of the samples' classes, nats (log 10 = 2.303: all digits)",
        NUMBER,
        HIGHER,
        _only(SUMMARY, HPARAMS),
    ),
    # with data.exclude_classes only (ae_lab/evaluation/novelty.py)
    HeadlineMetric(
        "novelty/auroc",
        "AUROC of the test reconstruction error, excluded classes against the rest",
        NUMBER,
        HIGHER,
        _only(RUN_END, SUMMARY, RESULTS),
    ),
    HeadlineMetric(
        "pca/novelty_auroc",
        "the same for PCA with as many components as the latent size",
        NUMBER,
        HIGHER,
        _only(RUN_END, SUMMARY, RESULTS),
    ),
    HeadlineMetric("time/epoch_s", "seconds per epoch, validation included", shown=TABLES),
    HeadlineMetric("time/samples_per_s", "training images per second", NUMBER, HIGHER, TABLES),
    HeadlineMetric("n_params", "trainable parameters", COUNT, None, TABLES),
    HeadlineMetric("time/wall_s", "seconds the job took, every attempt", shown=TABLES),
)


def find(name: str) -> HeadlineMetric | None:
    return next((m for m in HEADLINE if m.name == name), None)


def shown_in(place: str) -> tuple[str, ...]:
    """The names of the headline metrics shown in ``place``, in table order."""
    return tuple(m.name for m in HEADLINE if place in m.shown)


def with_ratio(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with ``RATIO`` added where they have both MSEs."""
    out = dict(values)
    mse, pca = values.get("test/mse"), values.get("pca/test_mse")
    if mse is not None and pca:
        out[RATIO] = mse / pca
    return out


def select(values: Mapping[str, Any], place: str) -> dict[str, Any]:
    """The headline metrics of ``values`` (``RATIO`` included) that ``place`` shows."""
    values = with_ratio(values)
    return {k: values[k] for k in shown_in(place) if k in values}


def is_integral(value: Any) -> bool:
    """An int, or a float with nothing after the point (``44.0`` components, ``202258.0``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())


def _mean(value: Any) -> Any:
    """The number a cell shows: a group's mean (a ``Stat`` of ``ae_lab.reporting.groups``)."""
    return getattr(value, "mean", value)


def column_form(name: str, values: Iterable[Any]) -> str:
    """One format for every cell of a column: the headline metric's own when it has one (a
    share, a count); otherwise whole numbers for a column of whole numbers or one that reaches
    1000 (``43,010`` beside ``875``, never ``4.301e+04``), 4 significant digits for the rest."""
    metric = find(name)
    if metric is not None and metric.form != NUMBER:
        return metric.form
    numbers = [v for v in map(_mean, values) if isinstance(v, int | float) and math.isfinite(v)]
    if numbers and (all(map(is_integral, numbers)) or max(abs(v) for v in numbers) >= 1000):
        return COUNT
    return NUMBER


def _spread(std: float, form: str) -> str:
    # a standard deviation to 2 significant digits, in the column's unit
    if form != NUMBER:
        return form.format(std)
    two = f"{std:.2g}"
    return f"{std:,.0f}" if "e+" in two else two  # 410, not 4.1e+02


def fmt(value: Any, name: str = "", form: str | None = None) -> str:
    """A table cell: a number in ``form`` (default: the headline metric's, else ``column_form``
    of the value alone), a group's ``Stat`` as ``mean ± std``, text as is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if hasattr(value, "mean") and hasattr(value, "std"):
        form = form or column_form(name, [value.mean])
        mean = fmt(value.mean, name, form)
        return mean if value.std is None else f"{mean} ± {_spread(value.std, form)}"
    if isinstance(value, float | int) and not isinstance(value, bool):
        form = form or column_form(name, [value])
        return form.format(value)
    return str(value).replace("|", "\\|")


def fmt_column(values: Sequence[Any], name: str = "") -> list[str]:
    """The cells of one column, every number in the same format."""
    form = column_form(name, values)
    return [fmt(v, name, form) for v in values]


def csv_value(value: Any) -> Any:
    """What ``summary.csv`` writes: whole numbers as integers (``202258``, not ``202258.0``)."""
    return int(value) if is_integral(value) and not isinstance(value, bool) else value


# how the results page and summary.md decide "beaten" (printed beside the tables)
BEATEN_RULE = (
    "beaten: *same* when ae_lab's mean, rounded as the published figure is, lies within one unit "
    "of its last digit; "
    "otherwise *yes* only when the published value lies outside mean ± 2·std/√n on ae_lab's "
    "worse side (ae_lab better beyond the noise), *no* when it lies beyond it on the better side, "
    "*within noise* in between (std: sample standard deviation over the n seeds; with one seed "
    "there is no spread and the value alone decides). A count (PCA components) is *same* or "
    "*differs*."
)


def decimals(published: float) -> int:
    """How many decimals the published figure was written with (0.009948: 6; 90: 0)."""
    exponent = Decimal(repr(float(published))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def beaten(name: str, ours: float, published: float, std: float | None = None, n: int = 1) -> str:
    """The verdict of ``BEATEN_RULE`` for ae_lab's mean ``ours`` (``std`` over ``n`` runs)."""
    metric = find(name)
    better = metric.better if metric else LOWER
    if better is None:
        return "same" if round(ours) == round(published) else "differs"
    places = decimals(published)
    unit = 10.0**-places  # the published figure's last digit
    if abs(round(ours, places) - published) <= unit * (1 + 1e-9):
        return "same"
    margin = 2 * std / math.sqrt(n) if std is not None and n > 1 else 0.0
    ahead = published - ours if better == LOWER else ours - published
    if ahead > margin:
        return "yes"
    if -ahead > margin:
        return "no"
    return "within noise"


# PCA's value of a model metric (ae_lab.evaluation.pca and the evaluations that score PCA too):
# <stage>/<metric> -> pca/<stage>_<metric> (val/mse -> pca/val_mse, test/mse_digit/3 ->
# pca/test_mse_digit/3), and <group>/<metric>_recon -> <group>/<metric>_pca (downstream/acc_recon)
PCA_PREFIX = "pca/"
RECON, PCA_SUFFIX = "_recon", "_pca"


def pca_counterparts(names: Iterable[str]) -> dict[str, str]:
    """Each model metric among ``names`` that has PCA's value of the same quantity among them,
    with that PCA metric; in the order of ``names``."""
    names = list(dict.fromkeys(names))
    present = set(names)
    pairs = {}
    for name in names:
        stage, _, rest = name.partition("/")
        if name.startswith(PCA_PREFIX) or not rest:
            continue
        candidates = [f"{PCA_PREFIX}{stage}_{rest}"]
        if name.endswith(RECON):
            candidates.append(name[: -len(RECON)] + PCA_SUFFIX)
        found = next((c for c in candidates if c in present), None)
        if found is not None:
            pairs[name] = found
    return pairs
