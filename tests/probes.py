"""Callbacks that entrypoint tests add with ``+callbacks.<name>._target_=tests.probes.<Class>``
to see what a run looks like from inside its Trainer."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class CallbackProbe(L.Callback):
    """Writes ``callbacks_seen.json`` to the run dir: the trainer's callbacks, by class name and in
    order, while it trains and while it tests."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}

    def _record(self, trainer: L.Trainer, stage: str) -> None:
        self.seen[stage] = [type(c).__name__ for c in trainer.callbacks]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._record(trainer, "fit")

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "test")
        Path(trainer.default_root_dir, "callbacks_seen.json").write_text(json.dumps(self.seen))
