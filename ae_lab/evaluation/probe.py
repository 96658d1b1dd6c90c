"""Linear probe: how much of the class a linear classifier reads off the codes.

A standardised logistic regression (scikit-learn) is fitted from the codes of training images to
their labels and scored on the test codes, once with every training label and once with a small
seeded budget per class; PCA's codes at the same size get the same two probes. This is the
representation measure of the autoencoder benchmarks (ae_bakeoff's linear probe).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import numpy as np
import torch
from annotated_types import Ge
from threadpoolctl import threadpool_limits

from ae_lab.evaluation.accuracy import FiniteAccuracy
from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.common import in_proportion
from ae_lab.evaluation.context import EvalContext
from ae_lab.evaluation.record import BatchRecord
from ae_lab.models.base import AutoencoderModule

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)


def fit_probe(codes: np.ndarray, labels: np.ndarray, max_iter: int = 1000) -> Pipeline:
    """Standardised features, then multinomial logistic regression (L2, C=1, lbfgs)."""
    from sklearn.linear_model import LogisticRegression  # here: a run without a probe never
    from sklearn.pipeline import make_pipeline  # loads scikit-learn
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    return probe.fit(codes, labels)


def label_budget(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` labels of each class (all of a class that has fewer), drawn with
    a seeded generator, in increasing order."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == k))[:per_class] for k in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def class_scores(probe: Pipeline | None, codes: np.ndarray, n_classes: int) -> torch.Tensor:
    """Class probabilities as (N, n_classes), a column per class index (0 for a class the probe
    never saw); NaN rows for codes that are not finite and everywhere without a probe."""
    scores = np.full((len(codes), n_classes), np.nan)
    if probe is not None:
        finite = np.isfinite(codes).all(1)
        scores[finite] = 0.0
        if finite.any():
            scores[np.ix_(finite, probe.classes_)] = probe.predict_proba(codes[finite])
    return torch.from_numpy(scores)


@torch.no_grad()
def encode_all(model: AutoencoderModule, images: torch.Tensor, batch_size: int) -> np.ndarray:
    """The model's codes of ``images`` (a VAE's posterior means), flattened, in float64."""
    was_training = model.training
    model.eval()
    codes = [
        model.encode(images[i : i + batch_size].to(model.device)).flatten(1).double().cpu()
        for i in range(0, len(images), batch_size)
    ]
    model.train(was_training)
    return torch.cat(codes).numpy()


def seen_classes(labels: torch.Tensor, excluded: Sequence[int]) -> torch.Tensor:
    """Which of ``labels`` are of a class the model was trained on (not in ``excluded``, the
    datamodule's ``exclude_classes``): a probe fitted without a class can only get it wrong."""
    return ~torch.isin(labels, torch.tensor(list(excluded), dtype=labels.dtype))


class LinearProbe(Evaluation):
    """Logs ``probe/acc`` and ``probe/acc_<per_class>`` (one per label budget in ``per_class``)
    for every autoencoder, and ``pca/probe_acc`` and ``pca/probe_acc_<per_class>`` for the run's
    PCA baseline (the run's shared PCA, not refitted): the test accuracy of logistic regression on
    standardised codes, over the test images of the classes the model was trained on, and
    ``probe/n_classes``, how many classes that is: with ``data.exclude_classes`` the training
    codes lack those classes, so their test images are left out rather than scored as wrong.

    Training codes: the model's codes of ``n_train`` clean training images, a seeded random
    subset of the training split (all of it when None), the images PCA is fitted on. Test codes:
    the batch records' (of the inputs; a VAE's posterior means), as for the
    PCA baseline's ``pca/test_mse``. ``per_class`` labels of each class, drawn with ``seed`` from
    the training codes, make each small-budget probe. Codes that are not finite have no class:
    their accuracy is NaN, with one warning. Under DDP every process fits the same probe and
    scores its share of the test set; the accuracies are reduced like the downstream ones.

    A run that tests part of the test split (``trainer.limit_test_batches``, e.g. ``debug=tiny``)
    fits on training codes in proportion (``common.in_proportion``; at least 10 a class): a
    smoke run's probe costs what its test costs; a full run's is unchanged.
    """

    def __init__(
        self,
        n_train: Annotated[int, Ge(2)] | None = 10_000,
        per_class: Annotated[int, Ge(1)] | Sequence[Annotated[int, Ge(1)]] = (100, 55),
        max_iter: Annotated[int, Ge(1)] = 1000,
        threads: Annotated[int, Ge(1)] | None = 1,
        batch_size: Annotated[int, Ge(1)] = 1000,
        seed: Annotated[int, Ge(0)] = 0,
    ) -> None:
        self.n_train = n_train
        # label budgets: 100 per class, and ae_bakeoff's 550 in all (55 per class)
        self.per_class = [per_class] if isinstance(per_class, int) else [int(k) for k in per_class]
        self.max_iter = max_iter
        self.threads = threads
        self.batch_size = batch_size
        self.seed = seed
        self.codes: dict[str, list[np.ndarray]] = {}
        self.labels: list[torch.Tensor] = []

    def start(self, ctx: EvalContext) -> None:
        self.codes, self.labels = {}, []

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        self.codes.setdefault("probe", []).append(record.code.flatten(1).double().cpu().numpy())
        pca = ctx.shared.pca
        if pca is not None:
            inputs = record.input.flatten(1).double().cpu().numpy()
            self.codes.setdefault("pca/probe", []).append(pca.pca.transform(inputs))
        self.labels.append(record.label.cpu())

    def training_codes(self, ctx: EvalContext) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The model's (and PCA's) codes of the seeded subset of training images, and its labels."""
        trainer, pl_module = ctx.trainer, ctx.model
        data = trainer.datamodule
        images, labels = data.images("train"), data.labels("train")
        tested = sum(len(c) for c in self.codes["probe"])
        n_classes = len(data.class_names)
        n_train = in_proportion(self.n_train or len(images), tested, trainer, 10 * n_classes)
        if n_train < len(images):
            gen = torch.Generator().manual_seed(self.seed)
            keep = torch.randperm(len(images), generator=gen)[:n_train].sort().values
            images, labels = images[keep.to(images.device)], labels[keep.to(labels.device)]
        codes = {"probe": encode_all(pl_module, images, self.batch_size)}
        pca = ctx.shared.pca
        if pca is not None and "pca/probe" in self.codes:
            codes["pca/probe"] = pca.pca.transform(images.flatten(1).double().cpu().numpy())
        return codes, labels.cpu().numpy()

    def finish(self, ctx: EvalContext) -> None:
        if not self.codes:
            return
        trainer, pl_module = ctx.trainer, ctx.model
        start = time.perf_counter()
        test_labels = torch.cat(self.labels)
        excluded = tuple(getattr(trainer.datamodule, "exclude_classes", ()))
        seen = seen_classes(test_labels, excluded)
        test_labels = test_labels[seen]
        n_classes = len(trainer.datamodule.class_names)
        train_codes, train_labels = self.training_codes(ctx)
        budgets = {f"acc_{k}": label_budget(train_labels, k, self.seed) for k in self.per_class}
        for prefix, train in train_codes.items():
            test = np.concatenate(self.codes[prefix])[seen.numpy()]
            fitted = None
            if np.isfinite(train).all():
                with threadpool_limits(limits=self.threads):
                    fitted = {"acc": fit_probe(train, train_labels, self.max_iter)}
                    for suffix, budget in budgets.items():
                        fitted[suffix] = fit_probe(
                            train[budget], train_labels[budget], self.max_iter
                        )
            for suffix in ("acc", *budgets):
                name = f"{prefix}/{suffix}" if prefix == "probe" else f"{prefix}_{suffix}"
                probe = fitted[suffix] if fitted is not None else None
                metric = FiniteAccuracy(n_classes).to(pl_module.device)
                scores = class_scores(probe, test, n_classes).to(pl_module.device)
                metric.update(scores, test_labels.to(pl_module.device))
                value = metric.compute()  # every process's share (DDP)
                if math.isnan(value):
                    log.warning("%s is NaN: some of its codes are not finite", name)
                ctx.log(name, value.float().to(pl_module.device))
        scored = n_classes - len(set(excluded))  # the classes every probe above was scored on
        ctx.log("probe/n_classes", float(scored))
        log.info(
            "linear probe: %d training codes (%s) in %.1f s",
            len(train_labels),
            " and ".join(train_codes),
            time.perf_counter() - start,
        )
        self.codes, self.labels = {}, []
