"""Images a model generates: decoded samples of the VAE prior, and interpolations between digits.

Samples come from the prior N(0, I), not from encoded test images: decoding encoded data shows
reconstruction, not generation.
"""

from __future__ import annotations

import lightning as L
import torch
from torchvision.utils import make_grid, save_image

from ae_lab.callbacks.common import TestStageCallback, figure_dir, log_image
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
    in TensorBoard as ``test/prior_samples`` and ``test/interpolations``."""

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
        if batch_idx == 0:
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
        if not isinstance(pl_module, AutoencoderModule):
            return
        out = figure_dir(trainer, self.output_dir)
        step = trainer.global_step
        if isinstance(pl_module, VariationalAutoencoder) and self.n_samples > 0:
            images = prior_samples(pl_module, self.n_samples, self.seed).float().cpu()
            nrow = max(1, int(self.n_samples**0.5))
            save_image(images, out / "prior_samples.png", nrow=nrow, padding=2, pad_value=0.5)
            grid = make_grid(images, nrow=nrow, padding=2, pad_value=0.5)
            log_image(trainer, "test/prior_samples", grid, step)
        if self.first is not None and self.n_pairs > 0:
            a, b = self.pairs(self.first["label"], self.n_pairs)
            if a:
                x = self.first["input"]
                images = interpolations(pl_module, x[a], x[b], self.steps).float().cpu()
                grid = make_grid(images, nrow=self.steps, padding=2, pad_value=0.5)
                save_image(grid, out / "interpolations.png")
                log_image(trainer, "test/interpolations", grid, step)
        self.first = None
