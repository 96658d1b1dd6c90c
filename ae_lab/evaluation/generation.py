"""Images a model generates: decoded samples of the VAE prior, and interpolations between digits.

Samples come from the prior (N(0, I), or a VampPrior), not from encoded test images: decoding
encoded data shows reconstruction, not generation.
"""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge
from matplotlib.figure import Figure

from ae_lab.callbacks.loggers import log_figure
from ae_lab.data.contract import label_names
from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.common import all_finite, skip
from ae_lab.evaluation.context import EvalContext
from ae_lab.evaluation.figures import image_grid, labelled_rows, run_title
from ae_lab.evaluation.record import BatchRecord
from ae_lab.models.base import AutoencoderModule
from ae_lab.models.vae import is_variational


def prior_samples(model: AutoencoderModule, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images decoded from codes of the model's prior (N(0, I), or its VampPrior), drawn
    with a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return model.decode(model.sample_prior(n, gen))


def interpolations(model: AutoencoderModule, a: torch.Tensor, b: torch.Tensor, steps: int):
    """For each pair (a[i], b[i]): the decodings of ``steps`` codes evenly spaced from a's code to
    b's, as (pairs * steps, C, H, W), one pair after the other."""
    za, zb = model.encode(a), model.encode(b)
    t = torch.linspace(0, 1, steps, device=za.device).view(1, steps, *[1] * (za.dim() - 1))
    codes = za.unsqueeze(1) * (1 - t) + zb.unsqueeze(1) * t
    return model.decode(codes.flatten(0, 1))


class Generation(Evaluation):
    """After testing: ``figures/prior_samples.png`` (VAEs) and ``figures/interpolations.png``
    (every autoencoder; each row goes from one test digit to another of a different class and is
    labelled with both, each column with its share of the way), also in the loggers that show
    images as ``test/prior_samples`` and ``test/interpolations``; titled with the run's config
    (``figures.run_title``).
    Images that are not finite, or a first test batch without two different digits, give one
    warning, no figure."""

    def __init__(
        self,
        n_samples: Annotated[int, Ge(0)] = 64,
        n_pairs: Annotated[int, Ge(0)] = 8,
        steps: Annotated[int, Ge(2)] = 10,
        seed: Annotated[int, Ge(0)] = 0,
        output_dir: str | None = None,
    ) -> None:
        self.n_samples = n_samples
        self.n_pairs = n_pairs
        self.steps = steps
        self.seed = seed
        self.output_dir = output_dir
        self.first: dict[str, torch.Tensor] | None = None

    def start(self, ctx: EvalContext) -> None:
        self.first = None

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        if record.index == 0 and ctx.writes_files:
            self.first = {"input": record.input, "label": record.label}

    @staticmethod
    def pairs(labels: torch.Tensor, n: int) -> tuple[list[int], list[int]]:
        """Up to ``n`` index pairs, each image paired with the next one of a different digit."""
        a, b = [], []
        for i in range(len(labels)):
            j = next((j for j in range(i + 1, len(labels)) if labels[j] != labels[i]), None)
            if j is not None and i not in b:
                a.append(i)
                b.append(j)
            if len(a) == n:
                break
        return a, b

    @torch.no_grad()
    def finish(self, ctx: EvalContext) -> None:
        first, self.first = self.first, None
        trainer, pl_module = ctx.trainer, ctx.model
        if not ctx.writes_files:
            return
        title = run_title(trainer, pl_module)
        if is_variational(pl_module) and self.n_samples > 0:
            images = prior_samples(pl_module, self.n_samples, self.seed).float().cpu()
            if self._finite("prior_samples", images):
                nrow = max(1, int(self.n_samples**0.5))
                prior = getattr(pl_module.objective, "prior_name", "standard")
                z = "z ~ N(0, I)" if prior == "standard" else f"z from the {prior} prior"
                what = f"{self.n_samples} images decoded from {z} (seed {self.seed})"
                fig = image_grid(images, nrow, f"{title}: samples of the prior", what)
                log_figure(trainer, "test/prior_samples", fig, self.output_dir)
        if first is not None and self.n_pairs > 0:
            a, b = self.pairs(first["label"], self.n_pairs)
            if not a:
                skip("interpolations", "the first test batch holds no two different digits")
                return
            x, labels = first["input"], first["label"].tolist()
            images = interpolations(pl_module, x[a], x[b], self.steps).float().cpu()
            if self._finite("interpolations", images):
                names = label_names(getattr(trainer, "datamodule", None), max(labels) + 1)
                ends = [(names[labels[i]], names[labels[j]]) for i, j in zip(a, b, strict=True)]
                paths = images.view(len(a), self.steps, *images.shape[1:])
                what = f"{title}: interpolations between test images"
                fig = interpolation_figure(paths, ends, what)
                log_figure(trainer, "test/interpolations", fig, self.output_dir)

    @staticmethod
    def _finite(name: str, images: torch.Tensor) -> bool:
        """Whether the images are finite; a diverged decoder's are not, and no picture shows them
        (one warning instead)."""
        if all_finite(images):
            return True
        skip(name.replace("_", " "), "the decoded images are not finite (NaN or infinite)")
        return False


def interpolation_figure(paths: torch.Tensor, ends: list[tuple[str, str]], title: str) -> Figure:
    """One row per pair (``paths``: (pairs, steps, C, H, W)), labelled ``from a to b`` by the two
    digits' classes, each column by its share t of the way from the first code to the second."""
    steps = paths.shape[1]
    rows = [(f"from {a} to {b}", path) for (a, b), path in zip(ends, paths, strict=True)]
    return labelled_rows(
        rows,
        title,
        xlabel="t: the decoding of (1 - t) code(first) + t code(second)",
        column_labels=[f"{t:.2g}" for t in torch.linspace(0, 1, steps).tolist()],
    )
