"""Every setting's allowed range, checked once at start-up before any work.

One table instead of checks spread over constructors: a value out of range stops the run with a
message that names the key, the value and what is allowed, rather than failing deep inside
Lightning or torch with a traceback (or, worse, running with a value that means something else).
Every key of the shipped configs has a rule (tests/test_validation.py fails on a new key without
one). A rule applies wherever its key exists in the composed config (``model.weight`` is the sparse
and the contractive autoencoder's penalty weight); ``*`` in a rule's key stands for any one name.

A key that only repeats another (``model.latent_dim: ${latent}``) is checked where its value is
set, so one mistake is one line. What the value alone cannot decide, whether a key added with
``+trainer.`` is an argument of Lightning's Trainer, ``check_trainer`` asks Lightning, still before
any data is read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ae_lab.data.definition import dataset_names, definition
from ae_lab.data.sizes import IMAGE_SHAPE, N_PIXELS
from ae_lab.run.errors import AeLabError, ConfigError, did_you_mean

# what lightning.seed_everything accepts (lightning.fabric.utilities.seed: a uint32)
SEED_RANGE = (0, 2**32 - 1)
# models whose penalty, not a narrow bottleneck, keeps them from copying the input, so their code
# may be wider than the image: the class name of ``model._target_``, and the option that picks it
OVERCOMPLETE_MODELS = {"SparseAE": "sparse_ae"}
# conv stages halve the image's side and the decoder doubles it back, so every stage must divide
# it evenly: 28 -> 14 -> 7, and no third
CONV_STAGES = max(n for n in range(1, IMAGE_SHAPE[1]) if IMAGE_SHAPE[1] % 2**n == 0)
# Lightning's precision flags (lightning.fabric.plugins.precision.precision._PRECISION_INPUT; a
# test compares them)
PRECISIONS = (
    "transformer-engine",
    "transformer-engine-float16",
    "16-true",
    "16-mixed",
    "bf16-true",
    "bf16-mixed",
    "32-true",
    "64-true",
    64,
    32,
    16,
    "64",
    "32",
    "16",
    "bf16",
)
# Lightning's accelerator names (its AcceleratorRegistry, plus auto and gpu; a test compares them)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
# Lightning's profiler names (lightning.pytorch.trainer.connectors: PROFILERS)
PROFILERS = ("simple", "advanced", "pytorch", "xla")
# keys that Hydra's instantiate reads (which class to build, and how), not settings of it
INSTANTIATE_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def at_least(lo: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and v >= lo


def between(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and lo <= v <= hi


def number(test: Callable[[float], bool]) -> Callable[[Any], bool]:
    return lambda v: _is_number(v) and test(v)


def one_of(*choices: Any) -> Callable[[Any], bool]:
    """Exact values: ``True`` is not ``1`` and ``"32"`` is not ``32``."""
    return lambda v: any(type(v) is type(c) and v == c for c in choices)


def either(*tests: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: any(test(v) for test in tests)


def widths(min_len: int, max_len: int | None = None) -> Callable[[Any], bool]:
    """A list of layer widths or channel counts, each an integer >= 1."""

    def ok(v: Any) -> bool:
        fits = min_len <= len(v) <= (max_len or len(v)) if isinstance(v, list) else False
        return fits and all(_is_int(w) and w >= 1 for w in v)

    return ok


def flag(v: Any) -> bool:
    return isinstance(v, bool)


def text(v: Any) -> bool:
    return isinstance(v, str)


def mapping(v: Any) -> bool:
    return isinstance(v, dict)


def built(v: Any) -> bool:
    """A config that instantiate builds into an object."""
    return isinstance(v, dict) and "_target_" in v


def never(v: Any) -> bool:
    return False


def batches(v: Any) -> bool:
    """Lightning's batch limits: a count, or a share of the batches."""
    return (_is_int(v) and v >= 0) or (isinstance(v, float) and 0 <= v <= 1)


def devices(v: Any) -> bool:
    """Lightning's ``devices``: a count, -1 for all, auto, or device indices (a list or "0,1")."""
    if v == "auto" or (_is_int(v) and (v >= 1 or v == -1)):
        return True
    if isinstance(v, list):
        return bool(v) and all(_is_int(i) and i >= 0 for i in v)
    return isinstance(v, str) and re.fullmatch(r"-1|\d+|\d+(\s*,\s*\d+)*\s*,?", v) is not None


@dataclass(frozen=True)
class Rule:
    key: str
    allowed: str
    ok: Callable[[Any], bool]
    nullable: bool = False
    # the names a string close to one of them is pointed to ("did you mean ...?")
    choices: tuple[str, ...] = ()
    # the value is a mapping checked as a whole; its own keys have no rules
    whole: bool = False

    def complaint(self, key: str, value: Any) -> str:
        shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as typed
        return f"{key} must be {self.allowed}, got {shown}{did_you_mean(value, self.choices)}"


def choice(key: str, *choices: str, nullable: bool = False, note: str = "") -> Rule:
    names = ("null", *choices) if nullable else choices
    allowed = "one of " + ", ".join(names) + (f" ({note})" if note else "")
    return Rule(key, allowed, one_of(*choices), nullable=nullable, choices=choices)


BOOL = "true or false"
SEED = f"an integer in [{SEED_RANGE[0]}, {SEED_RANGE[1]}] (what lightning.seed_everything takes)"
BATCHES = "an integer >= 0 (batches) or a number in [0, 1] (a share of them)"
FOLDER = "a folder's path"

RULES = (
    # conf/config.yaml
    Rule("latent", "a positive integer (the bottleneck size), e.g. latent=8", at_least(1)),
    Rule("seed", SEED, between(*SEED_RANGE)),
    Rule("compile", BOOL, flag),
    Rule("threads", "an integer >= 1 (torch threads per run)", at_least(1), nullable=True),
    choice("matmul_precision", "highest", "high", "medium", nullable=True),
    Rule("ckpt_path", "null, last or a checkpoint's path", text, nullable=True),
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
    Rule("data.root", f"{FOLDER} (the one holding MNIST/raw/, FashionMNIST/raw/, ...)", text),
    Rule("data.download", BOOL, flag),
    Rule("data.batch_size", "an integer >= 1", at_least(1)),
    Rule("data.eval_batch_size", "an integer >= 1", at_least(1), nullable=True),
    # below the dataset's number of training images: _dataset_fits
    Rule(
        "data.val_size",
        "an integer >= 1 (validation images taken from the training set)",
        at_least(1),
    ),
    Rule("data.split_seed", SEED, between(*SEED_RANGE)),
    Rule("data.seed", SEED, between(*SEED_RANGE)),
    Rule("data.fast", BOOL, flag),
    Rule("data.on_device", BOOL, flag),
    Rule("data.num_workers", "an integer >= 0 (DataLoader worker processes)", at_least(0)),
    Rule("data.pin_memory", BOOL, flag),
    choice("data.binarize_target", "threshold", "sample", nullable=True),
    # conf/model
    Rule("model.latent_dim", "a positive integer (the bottleneck size; set latent=N)", at_least(1)),
    Rule(
        "model.hidden",
        "a list of layer widths, each an integer >= 1, e.g. [256,64] ([] for none)",
        widths(0),
    ),
    Rule(
        "model.channels",
        f"a list of 1 to {CONV_STAGES} channel counts, each an integer >= 1, e.g. [32,64] "
        f"(each stage halves the image's side of {IMAGE_SHAPE[1]} pixels)",
        widths(1, CONV_STAGES),
    ),
    Rule("model.he_init", BOOL, flag),
    Rule("model.beta", "a number >= 0 (the KL weight)", number(lambda v: v >= 0)),
    Rule("model.kl_warmup_epochs", "an integer >= 0", at_least(0)),
    choice("model.recon_loss", "bce", "mse"),
    Rule("model.weight", "a number >= 0 (the penalty's weight)", number(lambda v: v >= 0)),
    Rule("model.rho", "a number in (0, 1) (the target activation)", number(lambda v: 0 < v < 1)),
    choice("model.sparsity", "kl", "l1"),
    choice("model.activation", "relu", "sigmoid"),
    Rule("model.dropout", "a number in [0, 1)", number(lambda v: 0 <= v < 1)),
    Rule("model.n_classes", "an integer >= 10 (MNIST's digits are 0-9)", at_least(10)),
    # conf/optimizer
    Rule("optimizer.lr", "a number > 0 (the learning rate)", number(lambda v: v > 0)),
    Rule("optimizer.weight_decay", "a number >= 0", number(lambda v: v >= 0)),
    Rule("optimizer.momentum", "a number >= 0", number(lambda v: v >= 0)),
    Rule("optimizer.nesterov", BOOL, flag),
    # conf/scheduler
    Rule("scheduler.max_lr", "a number > 0 (the peak learning rate)", number(lambda v: v > 0)),
    Rule(
        "scheduler.pct_start",
        "a number in (0, 1) (the share of the steps spent warming up)",
        number(lambda v: 0 < v < 1),
    ),
    # conf/transform
    Rule(
        "transform.std", "a number >= 0 (the noise's standard deviation)", number(lambda v: v >= 0)
    ),
    Rule(
        "transform.p",
        "a number in [0, 1) (the share of pixels dropped)",
        number(lambda v: 0 <= v < 1),
    ),
    Rule("transform.threshold", "a number in (0, 1)", number(lambda v: 0 < v < 1)),
    # conf/trainer and conf/accelerator: lightning.Trainer's arguments
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
    # conf/logger
    Rule("logger.*", "a logger config with _target_ (null: off)", built, nullable=True),
    Rule("logger.*.save_dir", FOLDER, text),
    Rule("logger.*.name", 'a string (a subfolder of save_dir, "" for none)', text),
    Rule(
        "logger.*.version",
        'a string or an integer (a subfolder, "" for none)',
        either(text, at_least(0)),
        nullable=True,
    ),
    Rule("logger.tensorboard.default_hp_metric", BOOL, flag),
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
    Rule("callbacks.model_checkpoint.auto_insert_metric_name", BOOL, flag),
    Rule("callbacks.progress_bar.refresh_rate", "an integer >= 0 (0: no bar)", at_least(0)),
    choice("callbacks.lr_monitor.logging_interval", "step", "epoch", nullable=True),
    Rule(
        "callbacks.hparams.params",
        "a mapping of names to values (TensorBoard's HPARAMS tab)",
        mapping,
        whole=True,
    ),
    Rule(
        "callbacks.pca.n_components",
        f"an integer in [1, {N_PIXELS}] or a share of variance in (0, 1) (null: latent)",
        either(between(1, N_PIXELS), lambda v: isinstance(v, float) and 0 < v < 1),
        nullable=True,
    ),
    Rule("callbacks.reconstructions.n_images", "an integer >= 1", at_least(1)),
    Rule("callbacks.generation.n_samples", "an integer >= 0 (prior samples; 0: none)", at_least(0)),
    Rule("callbacks.generation.n_pairs", "an integer >= 0 (interpolations; 0: none)", at_least(0)),
    Rule("callbacks.generation.steps", "an integer >= 2 (images per interpolation)", at_least(2)),
    Rule("callbacks.latent_map.n_points", "an integer >= 2 (test codes mapped)", at_least(2)),
    Rule("callbacks.latent_map.perplexity", "a number > 0", number(lambda v: v > 0)),
    Rule(
        "callbacks.latent_map.max_iter",
        "an integer >= 250 (t-SNE's iterations; scikit-learn's minimum)",
        at_least(250),
    ),
    Rule("callbacks.latent_map.threads", "an integer >= 1", at_least(1), nullable=True),
    Rule(
        "callbacks.downstream.checkpoint",
        "a model=classifier checkpoint's path (null: train one)",
        text,
        nullable=True,
    ),
    Rule("callbacks.downstream.cache_dir", FOLDER, text),
    Rule("callbacks.downstream.epochs", "an integer >= 1", at_least(1)),
    Rule("callbacks.downstream.batch_size", "an integer >= 1", at_least(1)),
    Rule("callbacks.downstream.lr", "a number > 0", number(lambda v: v > 0)),
    Rule(
        "callbacks.downstream.scheduler",
        "a scheduler config like the scheduler group's",
        mapping,
        nullable=True,
        whole=True,
    ),
    Rule("callbacks.nll.n_samples", "an integer >= 1 (importance samples per image)", at_least(1)),
)

# ``${latent}``: a reference to another key, no resolver
_REFERENCE = re.compile(r"\$\{[\w.\-]+\}")


def _matches(pattern: str, key: str) -> bool:
    names, want = key.split("."), pattern.split(".")
    return len(names) == len(want) and all(map(fnmatchcase, names, want))


def rule_for(key: str) -> Rule | None:
    return next((rule for rule in RULES if _matches(rule.key, key)), None)


def settings(cfg: DictConfig) -> Iterator[tuple[str, Any, Rule | None]]:
    """Every key a user can set in ``cfg`` (Hydra's own node aside), with its value as written
    (``${latent}`` unresolved) and its rule, or None when it has none."""

    def walk(node: dict, prefix: str) -> Iterator[tuple[str, Any, Rule | None]]:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if key == "hydra":
                continue
            rule = rule_for(key)
            if isinstance(value, dict) and not (rule and rule.whole):
                yield from walk(value, f"{key}.")
            else:
                yield key, value, rule

    yield from walk(OmegaConf.to_container(cfg, resolve=False), "")


def _resolved(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=None)
    except Exception:  # noqa: BLE001 - reported by the key's own rule
        return None


def _bottleneck_fits(cfg: DictConfig) -> str | None:
    """A code wider than the image can copy it, so only a model with a penalty that stops that
    may have one (the PCA beside it cannot have more components than pixels either)."""
    latent = _select(cfg, "model.latent_dim")
    model = str(_select(cfg, "model._target_")).rsplit(".")[-1]
    if not _is_int(latent) or latent <= N_PIXELS or model in OVERCOMPLETE_MODELS:
        return None
    key = "latent" if _select(cfg, "latent") == latent else "model.latent_dim"
    return (
        f"{key} must be at most {N_PIXELS} (the pixels of an image) for {model}, got {latent}; "
        + " or ".join(f"model={m}" for m in OVERCOMPLETE_MODELS.values())
        + " may be overcomplete"
    )


def _nesterov_has_momentum(cfg: DictConfig) -> str | None:
    nesterov = _select(cfg, "optimizer.nesterov")
    momentum = _select(cfg, "optimizer.momentum")
    if nesterov is True and _is_number(momentum) and momentum <= 0:
        return f"optimizer.nesterov=true needs optimizer.momentum > 0 (torch's SGD), got {momentum}"
    return None


def _dataset_fits(cfg: DictConfig) -> str | None:
    """The validation images come from the chosen dataset's training images, and the models
    take images of one shape (``ae_lab/data/sizes.py``)."""
    name, val_size = _select(cfg, "data.dataset"), _select(cfg, "data.val_size")
    if name not in dataset_names():
        return None
    data = definition(name)
    if data.image_shape != IMAGE_SHAPE:
        shape, models = ("x".join(map(str, s)) for s in (data.image_shape, IMAGE_SHAPE))
        return f"data.dataset={name} has images of {shape}; the models take {models}"
    n = data.train_images
    if _is_int(val_size) and val_size >= n:
        return (
            f"data.val_size must be an integer in [1, {n}) (validation images taken from "
            f"{data.name}'s {n:,} training images), got {val_size}"
        )
    return None


# settings that are wrong only together
CROSS_CHECKS = (_bottleneck_fits, _nesterov_has_momentum, _dataset_fits)


def problems(cfg: DictConfig) -> list[str]:
    """One line per setting out of range: ``<key> must be <allowed>, got <value>``."""
    found, unresolved = [], set()
    for key, raw, rule in settings(cfg):
        if rule is None:
            continue
        try:
            value = _resolved(cfg, key)
        except Exception as err:  # noqa: BLE001 - an unresolvable value is reported like a bad one
            reason = str(err).splitlines()[0]
            if reason not in unresolved:  # once, where it is written, not where it is used
                found.append(f"{key}={raw} cannot be resolved: {reason}")
            unresolved.add(reason)
            continue
        if isinstance(raw, str) and _REFERENCE.fullmatch(raw):
            continue  # checked where it is set
        if not ((value is None and rule.nullable) or rule.ok(value)):
            found.append(rule.complaint(key, value))
    return found + [p for check in CROSS_CHECKS if (p := check(cfg))]


def _refuse(found: list[str]) -> None:
    if found:
        raise ConfigError("\n".join(found))


def check_config(cfg: DictConfig) -> None:
    """Raises ``ConfigError`` listing every setting out of range."""
    _refuse(problems(cfg))


def trainer_problems(cfg: DictConfig) -> list[str]:
    """The ``trainer`` keys that are not arguments of ``lightning.Trainer`` (one added with
    ``+trainer.``, which Hydra suggests for a typo), and a strategy name Lightning does not know."""
    import inspect

    import lightning as L
    from lightning.pytorch.strategies import StrategyRegistry

    arguments = [p for p in inspect.signature(L.Trainer.__init__).parameters if p != "self"]
    given = [k for k in OmegaConf.select(cfg, "trainer", default={}) if k not in INSTANTIATE_KEYS]
    found = [
        f"trainer.{k}: lightning.Trainer has no argument {k}{did_you_mean(k, arguments)}"
        for k in given
        if k not in arguments
    ]
    strategy = OmegaConf.select(cfg, "trainer.strategy", default="auto")
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if isinstance(strategy, str) and strategy not in strategies:
        found.append(
            f"trainer.strategy must be one of {', '.join(strategies)}, got {strategy!r}"
            + did_you_mean(strategy, strategies)
        )
    return found


def check_trainer(cfg: DictConfig) -> None:
    """Raises ``ConfigError`` listing every ``trainer`` key Lightning's Trainer would refuse."""
    _refuse(trainer_problems(cfg))


def check_environment(cfg: DictConfig) -> None:
    """What the machine must offer for this config: a GPU when ``accelerator=gpu`` asks for one."""
    import torch

    accelerator = OmegaConf.select(cfg, "trainer.accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise AeLabError(
            f"accelerator={accelerator} but torch finds no GPU on this machine "
            "(torch.cuda.is_available() is False). Use accelerator=auto (the GPU when there is "
            "one, else the CPU) or accelerator=cpu."
        )
