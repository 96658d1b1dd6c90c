"""The reference loops ae_lab's speed is measured against: a plain PyTorch loop over the training
images resident on the device, and the classic tutorials' loop (torchvision's MNIST, a
``DataLoader``), both with ae_lab's model and its default optimizer and schedule written out by
hand. ``bench_timer`` times ae_lab's own step with the same ``plain_step``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import torch
from bench_env import LAUNCH_ENV


def default_recipe(
    model: torch.nn.Module, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """ae_lab's default optimizer and schedule (``optimizer=adam scheduler=onecycle``) written out
    by hand, so the reference loops train exactly as ae_lab does and the ratio is like for like."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    return opt, torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=3e-3, total_steps=steps, pct_start=0.15
    )


def plain_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
) -> None:
    """One step of the reference loops, with nothing around it: forward, MSE, backward, Adam."""
    loss = torch.nn.functional.mse_loss(torch.sigmoid(model.decoder(model.encoder(x))), x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


@contextlib.contextmanager
def plain_pytorch_env() -> Iterator[None]:
    """The reference loops run as a script that never imports Lightning would. They use ae_lab's
    model and data, which import Lightning, which sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``; with
    it every Adam step of a CUDA build of torch tries to load NVML again (about 200 us per step
    here without a GPU), which a plain PyTorch script does not pay."""
    key = "PYTORCH_NVML_BASED_CUDA_CHECK"
    saved = os.environ.pop(key, None)
    if key in LAUNCH_ENV:
        os.environ[key] = LAUNCH_ENV[key]
    try:
        yield
    finally:
        os.environ.pop(key, None)
        if saved is not None:
            os.environ[key] = saved


@plain_pytorch_env()
def classic_loop(root: str, epochs: int, batch_size: int, device: str) -> dict[str, Any]:
    """The loop of the classic tutorials: per-sample PIL decode + ToTensor, DataLoader, plain
    PyTorch, same model (ae_lab's DenseAE) and the same 55k training images as ae_lab."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import MNIST

    from ae_lab.data import MNISTDataModule
    from ae_lab.models import DenseAE

    torch.manual_seed(0)
    dataset = MNIST(root, train=True, transform=transforms.ToTensor(), download=False)
    _, train_idx = MNISTDataModule(root=root).split_indices(len(dataset))
    loader = DataLoader(
        Subset(dataset, train_idx.tolist()),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    model = DenseAE(latent_dim=32, hidden=[128]).to(device)
    opt, sched = default_recipe(model, epochs * len(loader))
    epoch_s, cpu_s, samples = [], [], []
    for _ in range(epochs):
        start, cpu, n = time.perf_counter(), time.process_time(), 0
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            plain_step(model, opt, sched, x)
            n += len(x)
        if device == "cuda":
            torch.cuda.synchronize()
        epoch_s.append(time.perf_counter() - start)
        cpu_s.append(time.process_time() - cpu)
        samples.append(n)
    return {"epoch_s": epoch_s, "cpu_s": cpu_s, "samples": samples}


@plain_pytorch_env()
def plain_loop(root: str, epochs: int, batch_size: int, device: str) -> dict[str, Any]:
    """The reference for ae_lab's own cost: a plain PyTorch loop over the same 55k training images
    resident on the device as one uint8 tensor, a shuffled order per epoch, each batch gathered and
    converted in two ops; the same model (ae_lab's DenseAE), loss and Adam. Whatever ae_lab adds
    per step on top of this (Lightning's loop, callbacks, logging) shows in the ratio."""

    from ae_lab.data import MNISTDataModule
    from ae_lab.models import DenseAE

    data = MNISTDataModule(root=root, download=False)
    data.setup()
    images = data.splits["train"][0].to(device)  # (N, C, H, W)
    torch.manual_seed(0)
    model = DenseAE(latent_dim=32, hidden=[128]).to(device)
    opt, sched = default_recipe(model, epochs * math.ceil(len(images) / batch_size))
    epoch_s, cpu_s, samples = [], [], []
    for _ in range(epochs):
        start, cpu = time.perf_counter(), time.process_time()
        order = torch.randperm(len(images), device=device)
        for idx in order.split(batch_size):
            x = images.index_select(0, idx) / 255.0
            plain_step(model, opt, sched, x)
        if device == "cuda":
            torch.cuda.synchronize()
        epoch_s.append(time.perf_counter() - start)
        cpu_s.append(time.process_time() - cpu)
        samples.append(len(images))
    return {"epoch_s": epoch_s, "cpu_s": cpu_s, "samples": samples}
