from ae_lab.callbacks.comparison import ComparisonLayout
from ae_lab.callbacks.digits import PerDigitMSE
from ae_lab.callbacks.downstream import DownstreamClassification
from ae_lab.callbacks.generation import Generation
from ae_lab.callbacks.hparams import HParamsSummary
from ae_lab.callbacks.images import ReconstructionGrid
from ae_lab.callbacks.latent_map import LatentMap
from ae_lab.callbacks.likelihood import ImportanceSampledNLL
from ae_lab.callbacks.novelty import NoveltyAUROC
from ae_lab.callbacks.pca import PCABaseline
from ae_lab.callbacks.probe import LinearProbe
from ae_lab.callbacks.samples import SampleQuality
from ae_lab.callbacks.timing import EpochTimer

__all__ = [
    "ComparisonLayout",
    "DownstreamClassification",
    "EpochTimer",
    "Generation",
    "HParamsSummary",
    "ImportanceSampledNLL",
    "LatentMap",
    "LinearProbe",
    "NoveltyAUROC",
    "PCABaseline",
    "PerDigitMSE",
    "ReconstructionGrid",
    "SampleQuality",
]
