"""The headline metrics: which final metrics a run is judged by, and where each is shown.

One list for the line a run ends with, the columns of a sweep's ``summary.md``, the metrics of
TensorBoard's HPARAMS tab and the job tables of the results page. Adding a metric to all of them
is one line in ``HEADLINE``; every other metric a run logs is still in its ``metrics.json``,
``summary.csv`` and logger. Each metric says how its values are written (``formatting`` writes
them) and which way is better (``verdicts`` judges ae_lab's figures against published ones by it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    # with data.exclude_classes only (ae_lab/callbacks/novelty.py)
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
