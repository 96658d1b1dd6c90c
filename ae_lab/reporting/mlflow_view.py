"""What MLflow's UI (3.17) shows of an ae_lab experiment, and the addresses that open it there.

MLflow 3's UI opens an experiment on the view of its workflow switch (GenAI or Model training),
which it reads from the address (``workflowType=machine_learning``), else from the browser's own
storage (``mlflow.workflowType``), GenAI in a fresh browser; no experiment tag, server flag or
environment variable sets it (its ``mlflow.experimentKind`` tag, which ae_lab still sets, only
labels the experiment). So every address ae_lab prints names the workflow.

The runs table's columns and the chart of the model's and PCA's validation MSE are a shared view
of the experiment: MLflow's UI loads the layout kept in the experiment tag
``mlflow.sharedViewState.<key>`` when the address says ``viewStateShareKey=<key>`` (what its
"Share" button makes), so those addresses open the runs with their settings and headline metrics,
and their charts with "model vs PCA" first, in any browser.
"""

from __future__ import annotations

import json
from typing import Any

# the experiment tag by which MLflow's UI labels what an experiment holds (its ExperimentKind)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"

# the address parameter that picks the UI's view, and its value for model training
WORKFLOW = "workflowType=machine_learning"
# where `mlflow ui` (and `mlflow server`) listen unless told otherwise
MLFLOW_UI = "http://127.0.0.1:5000"

SHARED_VIEW_TAG = "mlflow.sharedViewState."
VIEW_KEY = "model-vs-pca"
SECTION = "ae_lab-model-vs-pca"
# the chart: each run's learning curve (solid) and its PCA baseline (dashed), over the epochs
MODEL_VS_PCA = ("val/mse", "pca/val_mse")
# the runs table's columns, in place of its source, models and datasets (none in ae_lab)
COLUMNS = {
    "params": ("model", "latent", "transform"),
    "metrics": ("test/mse", "pca/test_mse", "test/mse_ratio"),
}


def runs_url(experiment_id: str, base: str = MLFLOW_UI) -> str:
    """The experiment's runs table in MLflow's model-training view, with the shared view's
    columns (``COLUMNS``)."""
    view = f"{WORKFLOW}&viewStateShareKey={VIEW_KEY}"
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{view}"


def chart_url(experiment_id: str, base: str = MLFLOW_UI) -> str:
    """The experiment's runs as charts, the model's and PCA's validation MSE on the first."""
    return f"{runs_url(experiment_id, base)}&compareRunsMode=CHART"


def _line_chart(uuid: str, title: str, metrics: tuple[str, ...]) -> dict[str, Any]:
    """A line chart card as MLflow's UI keeps it (its RunsChartsLineCardConfig): several metrics
    of each run, drawn in the run's colour, the first solid, the others dashed, over the step
    (ae_lab logs per-epoch metrics at their epoch)."""
    return {
        "uuid": uuid,
        "type": "LINE",
        "metricSectionId": SECTION,
        "deleted": False,
        "isGenerated": False,
        "displayName": title,
        "runsCountToCompare": 100,
        "metricKey": metrics[0],
        "selectedMetricKeys": list(metrics),
        "xAxisKey": "step",
        "selectedXAxisMetricKey": "",
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "scaleType": "linear",
        "xAxisScaleType": "linear",
        "lineSmoothness": 0,
        "ignoreOutliers": False,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": False,
        "range": {},
    }


def shared_view() -> str:
    """The value of the experiment tag ``SHARED_VIEW_TAG + VIEW_KEY``: the chart view's layout
    with a "model vs PCA" section first, its chart as wide as the section (the UI adds a chart of
    every other metric below it), every run shown; the runs table with ``COLUMNS``."""
    state = {
        "compareRunCharts": [
            _line_chart("ae_lab-val-mse", "val/mse: model and PCA", MODEL_VS_PCA),
        ],
        "compareRunSections": [
            {
                "uuid": SECTION,
                "name": "model vs PCA",
                "display": True,
                "isReordered": False,
                "deleted": False,
                "isGenerated": False,
                "columns": 1,  # one chart across the section, not a third of it
                "cardHeight": 480,
            }
        ],
        "runsHiddenMode": "SHOW_ALL",
        # as the UI names a column: params.`latent`, metrics.`test/mse`
        "selectedColumns": [f"{kind}.`{key}`" for kind, keys in COLUMNS.items() for key in keys],
    }
    return json.dumps(state, sort_keys=True)


def experiment_tags(present: dict[str, str]) -> dict[str, str]:
    """The tags ae_lab sets on an experiment with tags ``present``: the model-training label
    unless it says what it holds already (a user's choice stays), and the shared chart view
    unless it is there as this version writes it."""
    tags = {}
    if EXPERIMENT_KIND_TAG not in present:
        tags[EXPERIMENT_KIND_TAG] = MODEL_TRAINING
    view = shared_view()
    if present.get(SHARED_VIEW_TAG + VIEW_KEY) != view:
        tags[SHARED_VIEW_TAG + VIEW_KEY] = view
    return tags
