"""PCA's value of a model metric, by name: the pairs the comparison charts put side by side.

Each evaluation that scores PCA too logs PCA's value under a name derived from the model's
(``ae_lab.evaluation.pca`` and the evaluations beside it); this module knows that naming.
"""

from __future__ import annotations

from collections.abc import Iterable

# PCA's value of a model metric (ae_lab.evaluation.pca and the evaluations that score PCA too):
# <stage>/<metric> -> pca/<stage>_<metric> (val/mse -> pca/val_mse, test/mse_digit/3 ->
# pca/test_mse_digit/3), and <group>/<metric>_recon -> <group>/<metric>_pca (downstream/acc_recon)
PCA_PREFIX = "pca/"
RECON, PCA_SUFFIX = "_recon", "_pca"


def pca_counterparts(names: Iterable[str]) -> dict[str, str]:
    """Each model metric among ``names`` that has PCA's value of the same quantity among them,
    with that PCA metric; in the order of ``names``."""
    names = list(dict.fromkeys(names))
    present = set(names)
    pairs = {}
    for name in names:
        stage, _, rest = name.partition("/")
        if name.startswith(PCA_PREFIX) or not rest:
            continue
        candidates = [f"{PCA_PREFIX}{stage}_{rest}"]
        if name.endswith(RECON):
            candidates.append(name[: -len(RECON)] + PCA_SUFFIX)
        found = next((c for c in candidates if c in present), None)
        if found is not None:
            pairs[name] = found
    return pairs
