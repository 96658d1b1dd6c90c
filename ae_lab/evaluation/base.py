"""The shape of an evaluation: one object per ``conf/callbacks`` entry, driven by the suite.

An evaluation never hooks into Lightning itself. The suite (``ae_lab.evaluation.suite``) builds
one ``BatchRecord`` per batch and hands it to every evaluation of that stage, and hands each the
run's shared PCA and classifier; an evaluation says which stages it takes part in, which models
it evaluates, what it needs of the shared things and what it provides for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ae_lab.models.base import AutoencoderModule

if TYPE_CHECKING:
    import lightning as L

    from ae_lab.evaluation.context import EvalContext, Shared
    from ae_lab.evaluation.record import BatchRecord

# what an evaluation may provide or need (``Shared``'s fields)
PCA = "pca"
CLASSIFIER = "classifier"


class Evaluation:
    """A test-time (or validation-time) measurement of a model.

    ``stages``: ``"test"`` and/or ``"val"``. For each stage and each model it ``evaluates``:
    ``start`` once, ``update`` for every batch, ``finish`` once, where it logs. ``needs``: the
    shared things it wants built for this model (``CLASSIFIER``); ``provides``: the settings from
    which the suite builds one (the PCA's component count, the classifier's cache), by name.
    ``attach`` is called with the shared things whenever they are (re)built.
    """

    stages: ClassVar[tuple[str, ...]] = ("test",)

    def evaluates(self, model: L.LightningModule) -> bool:
        """Whether this evaluation measures ``model``: every autoencoder, by default."""
        return isinstance(model, AutoencoderModule)

    def needs(self, model: L.LightningModule) -> frozenset[str]:
        return frozenset()

    def provides(self) -> dict[str, Any]:
        return {}

    def attach(self, shared: Shared) -> None:
        """Keeps what it uses of the run's shared things."""

    def start(self, ctx: EvalContext) -> None:
        """A stage begins: forget the last one's state."""

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        """One batch."""

    def finish(self, ctx: EvalContext) -> None:
        """The stage ends: compute and log."""
