"""The hand rules: what a key allows where no signature can say it, grouped by the config file
that sets it. ``*`` in a key stands for any one name.

A key that sets an argument of ae_lab's own code needs no line here: the argument's annotation
says what it allows (``ae_lab.config.schema``). A line here is for a key of no constructor
(``latent``, ``seed``), an argument of torch's, Lightning's or Optuna's that needs more than its
annotation (a range, a note), or a check of one key that no annotation can state; settings wrong
only together are ``ae_lab.config.validation.CROSS_CHECKS``. tests/test_validation.py fails on a
key with neither, and tests/test_schema.py on a line that repeats an annotation.
"""

from __future__ import annotations

from ae_lab.config.rule import (
    BOOL,
    FOLDER,
    SEED,
    SEED_RANGE,
    Rule,
    at_least,
    between,
    built,
    choice,
    either,
    flag,
    mapping,
    number,
    one_of,
    text,
    widths,
)
from ae_lab.config.trainer_rules import TRAINER_RULES
from ae_lab.data.definition import dataset_names
from ae_lab.data.sizes import N_PIXELS

# conv stages a network may have: each halves the (padded) image's sides
MAX_CONV_STAGES = 5


def _in_parts(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The model's keys as its parts have them (``model.encoder.hidden: ${..hidden}``)."""
    return tuple(
        Rule(f"model.*.{r.key[6:]}", r.allowed, r.ok, r.nullable, r.choices)
        for r in rules
        if r.key.startswith("model.") and r.key.count(".") == 1
    )


RULES = (
    # conf/config.yaml
    Rule("latent", "a positive integer (the bottleneck size), e.g. latent=8", at_least(1)),
    Rule("seed", SEED, between(*SEED_RANGE)),
    Rule("compile", BOOL, flag),
    Rule(
        "threads",
        "an integer >= 1 (torch threads per run; null: the cores free to it)",
        at_least(1),
        nullable=True,
    ),
    choice("matmul_precision", "highest", "high", "medium", nullable=True),
    Rule("ckpt_path", "null, last or a checkpoint's path", text, nullable=True),
    # conf/eval.yaml: set from ckpt_path, never by hand
    Rule(
        "evaluated_checkpoint",
        "the tested checkpoint's content hash (sha256:...)",
        text,
        nullable=True,
    ),
    Rule("optimized_metric", "a logged metric's name such as val/mse", text, nullable=True),
    Rule(
        "report",
        "a report's declaration: title, reference and figures (conf/experiment/report_*.yaml)",
        mapping,
        nullable=True,
        whole=True,
    ),
    # the groups that may be empty (callbacks=none, logger=none, scheduler=none)
    *(
        Rule(g, f"a {g} group", mapping, nullable=True)
        for g in ("callbacks", "logger", "scheduler")
    ),
    # conf/data
    choice("data.dataset", *dataset_names(), note="the modules in ae_lab/data/datasets/"),
    Rule(
        "data.image_shape",
        "[channels, height, width], integers >= 1 (set by the dataset)",
        lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(at_least(1)(x) for x in v),
        nullable=True,
    ),
    Rule(
        "data.image_size",
        "a side in pixels, an integer >= 1, or [height, width], e.g. 32 or [32,48]",
        either(
            at_least(1), lambda v: isinstance(v, list) and len(v) == 2 and all(map(at_least(1), v))
        ),
    ),
    Rule("data.channels", "1 (grey) or 3 (colour)", one_of(1, 3)),
    Rule(
        "data.test_fraction",
        "a number in (0, 1) (the share of the images held out as the test set)",
        number(lambda v: 0 < v < 1),
    ),
    # conf/model
    Rule(
        "model.channels",
        f"a list of 1 to {MAX_CONV_STAGES} channel counts, each an integer >= 1, e.g. [32,64] "
        "(each stage halves the image's sides, padded to a multiple of 2**stages)",
        widths(1, MAX_CONV_STAGES),
    ),
    # conf/optimizer
    Rule("optimizer.lr", "a number > 0 (the learning rate)", number(lambda v: v > 0)),
    Rule("optimizer.weight_decay", "a number >= 0", number(lambda v: v >= 0)),
    Rule("optimizer.momentum", "a number >= 0", number(lambda v: v >= 0)),
    # conf/scheduler
    Rule("scheduler.max_lr", "a number > 0 (the peak learning rate)", number(lambda v: v > 0)),
    Rule(
        "scheduler.pct_start",
        "a number in (0, 1) (the share of the steps spent warming up)",
        number(lambda v: 0 < v < 1),
    ),
    *TRAINER_RULES,
    # conf/logger
    Rule("logger.*", "a logger config with _target_ (null: off)", built, nullable=True),
    # conf/logger/wandb.yaml (before logger.*.name: a run's name there, set to null by hand)
    Rule("logger.wandb.name", "a string (the run's name in W&B)", text, nullable=True),
    Rule("logger.*.save_dir", FOLDER, text),
    Rule("logger.*.name", 'a string (a subfolder of save_dir, "" for none)', text),
    Rule(
        "logger.*.version",
        'a string or an integer (a subfolder, "" for none)',
        either(text, at_least(0)),
        nullable=True,
    ),
    # conf/callbacks
    Rule("callbacks.*", "a callback config with _target_ (null: off)", built, nullable=True),
    Rule("callbacks.*.seed", SEED, between(*SEED_RANGE)),
    Rule("callbacks.model_checkpoint.dirpath", FOLDER, text, nullable=True),
    Rule("callbacks.model_checkpoint.filename", "a file name without .ckpt", text, nullable=True),
    Rule("callbacks.model_checkpoint.monitor", "a logged metric's name", text, nullable=True),
    choice("callbacks.model_checkpoint.mode", "min", "max"),
    Rule("callbacks.model_checkpoint.save_top_k", "an integer >= -1 (-1: all)", at_least(-1)),
    Rule(
        "callbacks.model_checkpoint.save_last",
        "true, false or link",
        either(flag, one_of("link")),
        nullable=True,
    ),
    Rule(
        "callbacks.pca.n_components",
        f"an integer in [1, {N_PIXELS}] or a share of variance in (0, 1) (null: latent)",
        either(between(1, N_PIXELS), lambda v: isinstance(v, float) and 0 < v < 1),
        nullable=True,
    ),
    Rule(
        "callbacks.downstream.scheduler",
        "a scheduler config like the scheduler group's",
        mapping,
        nullable=True,
        whole=True,
    ),
    Rule(
        "callbacks.probe.per_class",
        "an integer >= 1 or a list of them (labels per class; one probe each)",
        either(at_least(1), widths(1)),
    ),
    # conf/hparams_search/optuna.yaml and its pruners (Optuna's own names and ranges)
    Rule(
        "hparams_search.pruner.n_startup_trials",
        "an integer >= 0 (trials completed before pruning starts)",
        at_least(0),
    ),
    Rule(
        "hparams_search.pruner.n_warmup_steps",
        "an integer >= 0 (epochs of a trial before it can be pruned)",
        at_least(0),
    ),
    Rule("hparams_search.pruner.interval_steps", "an integer >= 1", at_least(1)),
    Rule("hparams_search.pruner.min_resource", "an integer >= 1 (epochs)", at_least(1)),
    Rule(
        "hparams_search.pruner.max_resource",
        "an integer >= 1 or auto (epochs)",
        either(at_least(1), one_of("auto")),
    ),
    Rule("hparams_search.pruner.reduction_factor", "an integer >= 2", at_least(2)),
)
# the composed models' keys again as their parts have them (model.encoder.channels, ...); the
# other model keys are checked from their constructors' signatures (ae_lab/config/schema.py)
RULES = (*RULES, *_in_parts(RULES))
