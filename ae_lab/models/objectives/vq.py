"""The vector-quantised autoencoder (VQ-VAE, van den Oord et al., 2017).

The encoder's code of ``latent_dim`` values is cut into vectors of ``code_dim`` (the last padded
with zeros where ``code_dim`` does not divide it); each is replaced by its nearest entry of a
learned codebook of ``codebook_size``, and the decoder reads the quantised code. The gradient
passes the quantisation unchanged (straight-through), the codebook learns from
||sg(z_e) - e||^2 and the encoder is held to its codes by ``commitment`` * ||z_e - sg(e)||^2.
Loss = MSE + both.

It logs the reconstruction (``recon``), the two codebook terms, and how much of the codebook the
batch uses: ``perplexity`` (exp of the entropy of the codes' use: 1 when one code does all the
work, ``codebook_size`` when all are used alike) and ``codes_used`` (the share of the codebook
used at all). Its posterior is a point mass on a code, with no density to score: it has no
NLL, and the NLL evaluation says so in one line.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge
from torch import nn

from ae_lab.models.module import Batch, Composed, Step
from ae_lab.models.objectives.base import Objective


class VectorQuantized(Objective):
    name = "mse_vq"
    no_likelihood = "a VQ-VAE's posterior is a point mass on a code, which has no likelihood"

    def __init__(
        self,
        codebook_size: Annotated[int, Ge(2)] = 512,
        code_dim: Annotated[int, Ge(1)] = 4,
        commitment: Annotated[float, Ge(0)] = 0.25,
    ) -> None:
        super().__init__()
        self.code_dim = int(code_dim)
        self.commitment = float(commitment)
        self.codebook = nn.Embedding(codebook_size, code_dim)
        nn.init.uniform_(self.codebook.weight, -1 / codebook_size, 1 / codebook_size)

    def quantise(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The nearest codebook entries of ``z_e``'s vectors (as z_e's shape) and their indices.
        A code whose size ``code_dim`` does not divide is padded with zeros for the search."""
        n, size = z_e.shape
        pad = -size % self.code_dim
        vectors = F.pad(z_e, (0, pad)).reshape(-1, self.code_dim)
        book = self.codebook.weight
        distance = (
            vectors.square().sum(1, keepdim=True) - 2 * vectors @ book.T + book.square().sum(1)
        )
        indices = distance.argmin(1)
        z_q = self.codebook(indices).view(n, size + pad)[:, :size]
        return z_q, indices.view(n, -1)

    def encode(self, model: Composed, x: torch.Tensor) -> torch.Tensor:
        return self.quantise(model.encoder(x))[0]

    def usage(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The perplexity of the codes' use in this batch and the share of the codebook used."""
        counts = torch.bincount(indices.flatten(), minlength=self.codebook.num_embeddings)
        p = counts.float() / counts.sum()
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
        return {"perplexity": entropy.exp(), "codes_used": (counts > 0).float().mean()}

    def step(self, model: Composed, batch: Batch) -> Step:
        z_e = model.encoder(batch["input"])
        z_q, indices = self.quantise(z_e)
        codebook = F.mse_loss(z_q, z_e.detach())
        commit = F.mse_loss(z_e, z_q.detach())
        straight = z_e + (z_q - z_e).detach()  # the decoder's gradient reaches the encoder
        recon = torch.sigmoid(model.decoder(straight))
        mse = F.mse_loss(recon, batch["target"])
        terms = {
            "loss": mse + codebook + self.commitment * commit,
            "recon": mse,
            "codebook": codebook,
            "commitment": commit,
            **self.usage(indices),
        }
        return Step(terms, recon, z_q)
