from ae_lab.callbacks.comparison import ComparisonLayout
from ae_lab.callbacks.hparams import HParamsSummary
from ae_lab.callbacks.timing import EpochTimer

__all__ = ["ComparisonLayout", "EpochTimer", "HParamsSummary"]
