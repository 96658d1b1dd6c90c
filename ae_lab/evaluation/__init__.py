"""The evaluations a run makes of its model, at validation and test: one module each, run in one
suite (``ae_lab.evaluation.suite``) that builds one record per batch (``record``) and what they
share (the PCA, the downstream classifier: ``context.Shared``). Each is one entry of
``conf/callbacks/*.yaml``; docs/extending.md shows how to add one."""

from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.digits import PerDigitMSE
from ae_lab.evaluation.downstream import DownstreamClassification
from ae_lab.evaluation.generation import Generation
from ae_lab.evaluation.images import ReconstructionGrid
from ae_lab.evaluation.latent_map import LatentMap
from ae_lab.evaluation.likelihood import ImportanceSampledNLL
from ae_lab.evaluation.novelty import NoveltyAUROC
from ae_lab.evaluation.pca import PCABaseline
from ae_lab.evaluation.probe import LinearProbe
from ae_lab.evaluation.samples import SampleQuality
from ae_lab.evaluation.suite import EvaluationSuite

__all__ = [
    "DownstreamClassification",
    "Evaluation",
    "EvaluationSuite",
    "Generation",
    "ImportanceSampledNLL",
    "LatentMap",
    "LinearProbe",
    "NoveltyAUROC",
    "PCABaseline",
    "PerDigitMSE",
    "ReconstructionGrid",
    "SampleQuality",
]
