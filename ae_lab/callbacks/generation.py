"""Images a model generates: decoded samples of the VAE prior, and interpolations between digits.

Samples come from the prior N(0, I), not from encoded test images: decoding encoded data shows
reconstruction, not generation.
"""

from __future__ import annotations

import lightning as L
import torch
from torchvision.utils import make_grid

from ae_lab.callbacks.common import TestStageCallback, all_finite, skip, writes_files
from ae_lab.callbacks.loggers import log_figure
from ae_lab.models.base import AutoencoderModule
from ae_lab.models.vae import VariationalAutoencoder


def prior_samples(model: VariationalAutoencoder, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images decoded from z ~ N(0, I), drawn with a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=gen).to(model.device)
    return model.decode(z)


def interpolations(model: AutoencoderModule, a: torch.Tensor, b: torch.Tensor, steps: int):
    """For each pair (a[i], b[i]): the decodings of ``steps`` codes evenly spaced from a's code to
    b's, as (pairs * steps, C, H, W), one pair after the other."""
    za, zb = model.encode(a), model.encode(b)
    t = torch.linspace(0, 1, steps, device=za.device).view(1, steps, *[1] * (za.dim() - 1))
    codes = za.unsqueeze(1) * (1 - t) + zb.unsqueeze(1) * t
    return model.decode(codes.flatten(0, 1))


class Generation(TestStageCallback):
    """After testing: ``figures/prior_samples.png`` (VAEs) and ``figures/interpolations.png``
    (every autoencoder; each row goes from one test digit to another of a different class), also
    in the loggers that show images as ``test/prior_samples`` and ``test/interpolations``.
    Images that are not finite, or a first test batch without two different digits, give one
    warning, no figure."""

    def __init__(
        self,
        n_samples: int = 64,
        n_pairs: int = 8,
        steps: int = 10,
        seed: int = 0,
        output_dir: str | None = None,
    ) -> None:
        self.n_samples = n_samples
        self.n_pairs = n_pairs
        self.steps = steps
        self.seed = seed
        self.output_dir = output_dir
        self.first: dict[str, torch.Tensor] | None = None

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        if batch_idx == 0 and writes_files(trainer):
            self.first = {"input": batch["input"], "label": batch["label"]}

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
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        first, self.first = self.first, None
        if not isinstance(pl_module, AutoencoderModule) or not writes_files(trainer):
            return
        if isinstance(pl_module, VariationalAutoencoder) and self.n_samples > 0:
            images = prior_samples(pl_module, self.n_samples, self.seed).float().cpu()
            self._write(trainer, "prior_samples", images, nrow=max(1, int(self.n_samples**0.5)))
        if first is not None and self.n_pairs > 0:
            a, b = self.pairs(first["label"], self.n_pairs)
            if not a:
                skip("interpolations", "the first test batch holds no two different digits")
                return
            x = first["input"]
            images = interpolations(pl_module, x[a], x[b], self.steps).float().cpu()
            self._write(trainer, "interpolations", images, nrow=self.steps)

    def _write(self, trainer: L.Trainer, name: str, images: torch.Tensor, nrow: int) -> None:
        """``figures/<name>.png`` and ``test/<name>`` in the loggers, unless the images are not
        finite (a diverged decoder), which no picture shows."""
        if not all_finite(images):
            skip(name.replace("_", " "), "the decoded images are not finite (NaN or infinite)")
            return
        grid = make_grid(images, nrow=nrow, padding=2, pad_value=0.5)
        log_figure(trainer, f"test/{name}", grid, self.output_dir)
