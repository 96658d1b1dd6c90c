"""The hand rules of Lightning's ``Trainer`` arguments (``conf/trainer``, ``conf/accelerator``,
``trainer.*`` on the command line): its signature types them (``max_epochs: Optional[int]``) but
cannot say their ranges, nor that ``logger`` and ``callbacks`` are the groups' to set.
``tests/test_validation.py`` checks that each names an argument of the Trainer.
"""

from __future__ import annotations

from ae_lab.config.rule import (
    ACCELERATORS,
    BATCHES,
    BOOL,
    FOLDER,
    PRECISIONS,
    PROFILERS,
    Rule,
    at_least,
    batches,
    built,
    choice,
    devices,
    either,
    flag,
    mapping,
    never,
    number,
    one_of,
    text,
)

TRAINER_RULES = (
    Rule("trainer.max_epochs", "an integer >= 1", at_least(1)),
    Rule("trainer.min_epochs", "an integer >= 0", at_least(0), nullable=True),
    Rule("trainer.max_steps", "an integer >= -1 (-1: no limit)", at_least(-1)),
    Rule("trainer.min_steps", "an integer >= 0", at_least(0), nullable=True),
    Rule(
        "trainer.max_time",
        "a duration DD:HH:MM:SS or a mapping such as {hours: 4}",
        either(text, mapping),
        nullable=True,
        whole=True,
    ),
    choice("trainer.accelerator", *ACCELERATORS, note="the accelerator group sets it"),
    Rule(
        "trainer.strategy",
        "a Lightning strategy's name such as auto, ddp or ddp_spawn, or a config with _target_",
        either(text, built),
        whole=True,
    ),
    Rule(
        "trainer.devices",
        "a number of devices >= 1, -1 (all), auto, or device indices such as [0,1]",
        devices,
    ),
    Rule("trainer.num_nodes", "an integer >= 1", at_least(1)),
    Rule(
        "trainer.precision",
        "one of " + ", ".join(dict.fromkeys(map(str, PRECISIONS))),
        one_of(*PRECISIONS),
        choices=tuple(p for p in PRECISIONS if isinstance(p, str)),
    ),
    Rule("trainer.limit_*_batches", BATCHES, batches, nullable=True),
    Rule("trainer.overfit_batches", BATCHES, batches),
    Rule(
        "trainer.fast_dev_run", "true, false or a number of batches >= 0", either(flag, at_least(0))
    ),
    Rule("trainer.check_val_every_n_epoch", "an integer >= 1", at_least(1), nullable=True),
    Rule(
        "trainer.val_check_interval",
        "an integer >= 1 (batches), a number in (0, 1] (a share of an epoch) or a duration",
        either(at_least(1), number(lambda v: 0 < v <= 1), text, mapping),
        nullable=True,
        whole=True,
    ),
    Rule("trainer.num_sanity_val_steps", "an integer >= -1 (-1: all)", at_least(-1), nullable=True),
    Rule("trainer.log_every_n_steps", "an integer >= 0 (0: never)", at_least(0), nullable=True),
    Rule("trainer.accumulate_grad_batches", "an integer >= 1", at_least(1)),
    Rule("trainer.gradient_clip_val", "a number >= 0", number(lambda v: v >= 0), nullable=True),
    choice("trainer.gradient_clip_algorithm", "norm", "value", nullable=True),
    Rule(
        "trainer.deterministic", "true, false or warn", either(flag, one_of("warn")), nullable=True
    ),
    *(
        Rule(f"trainer.{k}", BOOL, flag, nullable=True)
        for k in (
            "benchmark",
            "enable_progress_bar",
            "enable_model_summary",
            "enable_checkpointing",
        )
    ),
    *(
        Rule(f"trainer.{k}", BOOL, flag)
        for k in (
            "inference_mode",
            "use_distributed_sampler",
            "detect_anomaly",
            "barebones",
            "sync_batchnorm",
            "enable_autolog_hparams",
        )
    ),
    Rule("trainer.reload_dataloaders_every_n_epochs", "an integer >= 0", at_least(0)),
    Rule(
        "trainer.profiler",
        f"one of {', '.join(PROFILERS)} or a profiler config with _target_",
        either(one_of(*PROFILERS), built),
        nullable=True,
        choices=PROFILERS,
        whole=True,
    ),
    Rule("trainer.default_root_dir", FOLDER, text, nullable=True),
    Rule("trainer.logger", "set by the logger group (logger=csv, logger=none, ...)", never),
    Rule(
        "trainer.callbacks",
        "set by the callbacks group (callbacks=full, ~callbacks.latent_map, ...)",
        never,
        whole=True,
    ),
)
