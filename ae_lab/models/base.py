"""The names the callbacks and earlier code import the models' building blocks by: the
LightningModule base and step types (``ae_lab.models.module``) and the one autoencoder class,
``AutoencoderModule`` (``ae_lab.models.autoencoder.Autoencoder``)."""

from ae_lab.models.autoencoder import Autoencoder
from ae_lab.models.module import (
    Batch,
    EvalOutputs,
    LabModule,
    OptimizerFactory,
    SchedulerFactory,
    Step,
    build_schedule,
    scheduled_steps,
)

AutoencoderModule = Autoencoder

__all__ = [
    "AutoencoderModule",
    "Batch",
    "EvalOutputs",
    "LabModule",
    "OptimizerFactory",
    "SchedulerFactory",
    "Step",
    "build_schedule",
    "scheduled_steps",
]
