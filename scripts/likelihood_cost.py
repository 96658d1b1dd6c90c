"""What the likelihood benchmark (``experiment=likelihood``) costs, measured in parts and scaled:
one epoch of each model's training steps, and the test NLL at K importance samples, on the real
MNIST, with one torch thread (what ``make results-likelihood`` gives each job).

``python -m scripts.likelihood_cost [--batches 40] [--images 200] [--k 5000]`` times ``--batches``
training steps (forward, backward, Adam) of each preset job on dynamically binarized training
batches, scales them to one epoch of the 55k training images, times the NLL of ``--images``
test images at K = ``--k`` and scales it to the 10k test images, then prints each job's
projection and the study's (epochs x 3 seeds, two jobs at a time). Validation passes, PCA and
the figures are left out: they are small beside these. Numbers from a loaded machine are upper
bounds; take them on a quiet one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ae_lab.data.contract import clean_image
from ae_lab.evaluation.likelihood import importance_sampled_nll
from ae_lab.run.process import setup
from ae_lab.run.train import CONFIG_DIR

TRAIN_IMAGES, TEST_IMAGES = 55_000, 10_000


def jobs() -> list[str]:
    """The preset's jobs, as its sweep declares them."""
    cfg = compose("config", ["experiment=likelihood"], return_hydra_config=True)
    return [j.strip() for j in str(cfg.hydra.sweeper.params.report_job).split(",")]


def images(cfg, split: str, n: int) -> torch.Tensor:
    """The first ``n`` grey images of a split, as the datamodule reads them."""
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit" if split == "train" else "test")
    loader = data.train_dataloader() if split == "train" else data.test_dataloader()
    out = []
    for batch in loader:
        # the fast path's batches are (images, labels); the datamodule's hooks make the dict
        out.append(batch[0] if isinstance(batch, tuple | list) else clean_image(batch))
        if sum(len(b) for b in out) >= n:
            break
    return torch.cat(out)[:n]


def time_training(model, grey: torch.Tensor, batch_size: int, batches: int) -> float:
    """Seconds per training step, the mean over ``batches`` steps after one warm-up step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    gen = torch.Generator().manual_seed(0)

    def step(i: int) -> None:
        x = grey[(i * batch_size) % len(grey) :][:batch_size]
        x = torch.bernoulli(x, generator=gen)  # dynamic binarization
        batch = {"input": x, "target": x, "label": torch.zeros(len(x), dtype=torch.long)}
        loss = model.shared_step(batch).terms["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(0)
    start = time.perf_counter()
    for i in range(1, batches + 1):
        step(i)
    return (time.perf_counter() - start) / batches


def time_nll(model, grey: torch.Tensor, k: int, max_decoded: int) -> float:
    """Seconds for the NLL of ``grey``'s images (binarized once) at ``k`` samples."""
    model.eval()
    x = torch.bernoulli(grey, generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    importance_sampled_nll(model, x, x, k, torch.Generator().manual_seed(2), max_decoded)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.likelihood_cost")
    parser.add_argument("--batches", type=int, default=40, help="training steps timed per job")
    parser.add_argument("--images", type=int, default=200, help="test images for the NLL")
    parser.add_argument("--k", type=int, default=5000, help="importance samples K")
    parser.add_argument("--epochs", type=int, help="default: the preset's trainer.max_epochs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--at-once", type=int, default=2, help="jobs run at a time")
    args = parser.parse_args(argv)
    setup()
    torch.set_num_threads(1)
    total = 0.0
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        names = jobs()
        for name in names:
            cfg = compose("config", ["experiment=likelihood", f"report_job={name}"])
            epochs = args.epochs or int(cfg.trainer.max_epochs)
            torch.manual_seed(0)
            model = instantiate(cfg.model, optimizer=instantiate(cfg.optimizer), _convert_="all")
            batch_size = int(cfg.data.batch_size)
            grey = images(cfg, "train", batch_size * (args.batches + 1))
            per_step = time_training(model, grey, batch_size, args.batches)
            epoch_s = per_step * -(-TRAIN_IMAGES // batch_size)
            test = images(cfg, "test", args.images)
            nll_s = time_nll(model, test, args.k, int(cfg.callbacks.nll.max_decoded))
            nll_s *= TEST_IMAGES / args.images
            job_s = epochs * epoch_s + nll_s
            total += job_s * args.seeds
            print(
                f"{name}: {per_step * 1e3:.1f} ms per step of {batch_size}, {epoch_s:.0f} s per "
                f"epoch; NLL at K={args.k}: {nll_s / TEST_IMAGES * 1e3:.0f} ms per image, "
                f"{nll_s / 60:.1f} min for {TEST_IMAGES} images; job at {epochs} epochs: "
                f"{job_s / 60:.1f} min",
                flush=True,
            )
    print(
        f"study: {len(names)} jobs x {args.seeds} seeds = {total / 3600:.1f} h of one thread; "
        f"{total / 3600 / args.at_once:.1f} h at {args.at_once} jobs at a time (if they share out "
        "evenly)"
    )


if __name__ == "__main__":
    main()
