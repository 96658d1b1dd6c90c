"""What a batch becomes once it is on its device, for every dataset: the clean image, its
corrupted input and, under ``binarize_target``, a binarized target; and the random state of that
corruption and of the batch order, which checkpoints carry so that a resumed run matches an
unbroken one. Elementwise on (B, C, H, W), so it holds for any image shape."""

from __future__ import annotations

from typing import Any

import torch

from ae_lab.core.errors import AeLabError
from ae_lab.data.contract import CLEAN


class CorruptedBatches:
    """The batch hooks and the carried random state of ``ImageDataModule`` (a LightningDataModule
    that sets ``seed``, ``corruption``, ``binarize_target``, ``exclude_classes``, ``trainer``)."""

    _generators: dict[tuple[str, torch.device], torch.Generator]
    _train_order: torch.Generator | None
    _resumed: dict[str, torch.Tensor]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The random state that carries over from one epoch to the next, saved in checkpoints so
        that a resumed run draws the same batch order and training corruption as an unbroken one.
        (Evaluation corruption is re-seeded on every pass and needs none.)"""
        state = {}
        if self.exclude_classes:  # checked on resume: the batch order belongs to this split
            state["exclude_classes"] = torch.tensor(self.exclude_classes)
        if self._train_order is not None:
            state["train_order"] = self._train_order.get_state()
        for (kind, device), gen in self._generators.items():
            if kind == "train":
                state[f"train_corruption/{device.type}"] = gen.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        # applied when the generators are made, which is after Lightning restores this state
        self._resumed = dict(state_dict)
        saved = tuple(self._resumed.pop("exclude_classes", torch.tensor([])).tolist())
        if saved != self.exclude_classes:
            raise AeLabError(
                f"the checkpoint was trained with data.exclude_classes={list(saved)}, this run has "
                f"data.exclude_classes={list(self.exclude_classes)}; continue it with the same "
                "setting, or start a new run"
            )

    def _restore(self, key: str, generator: torch.Generator) -> None:
        if key in self._resumed:
            generator.set_state(self._resumed.pop(key))

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        # Resident batches are already where they belong; Lightning's generic move walks the
        # batch's structure on every step only to find that out (about 10 us per step).
        if batch[0].device == device:
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> dict[str, torch.Tensor]:
        x, y, i = batch
        training = self.trainer is None or self.trainer.training
        gen = self._generator("train" if training else "eval", x.device)
        if not training:  # same corruption on every evaluation pass
            gen.manual_seed(self.seed * 1_000_003 + i)
        clean = x
        if self.binarize_target == "threshold":
            x = (x > 0.5).to(x.dtype)
        elif self.binarize_target == "sample":
            x = torch.bernoulli(x, generator=gen)
        batch = {"input": self.corruption(x, generator=gen), "target": x, "label": y}
        if x is not clean:  # MSEs stay against the clean image (ae_lab.data.contract.CLEAN)
            batch[CLEAN] = clean
        return batch

    def _generator(self, kind: str, device: torch.device) -> torch.Generator:
        key = (kind, device)
        if key not in self._generators:
            gen = torch.Generator(device=device).manual_seed(self.seed + 1)
            self._restore(f"{kind}_corruption/{device.type}", gen)
            self._generators[key] = gen
        return self._generators[key]
