"""A ternary MLP as a Brevitas user writes it: the reference for ``gxnor import``.

Ternary weights (2-bit signed narrow-range ``QuantLinear``, a scale per output channel),
batch-norm, ternary activations (2-bit signed narrow-range ``QuantIdentity`` with a learned
scale), trained with Brevitas' own straight-through estimators in float, the input scaled to
[0, 1] as ``torchvision``'s ``ToTensor`` does. Nothing here is gxnor's: it is the other flow,
exported with Brevitas' ``export_qonnx``, that the tests and ``gxnor bench qonnx`` import and
compare bit for bit (Brevitas, QONNX's executor, gxnor's golden model, the RTL).

Needs the ``dev`` extra (brevitas, onnxoptimizer).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np


def make(sizes=(784, 256, 256, 10), seed: int = 0):
    """The network: fc + batch-norm (+ ternary activation) per layer, scores out."""
    import brevitas.nn as qnn
    import torch
    from torch import nn

    torch.manual_seed(seed)
    mods: list = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mods += [qnn.QuantLinear(n_in, n_out, bias=False, weight_bit_width=2,
                                 weight_scaling_per_output_channel=True),
                 nn.BatchNorm1d(n_out)]
        if i < len(sizes) - 2:
            mods += [qnn.QuantIdentity(bit_width=2, narrow_range=True)]
    return nn.Sequential(*mods)


def _inputs(images: np.ndarray):
    import torch

    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)


def train(model, images: np.ndarray, labels: np.ndarray, epochs: int = 10,
          batch: int = 100, lr: float = 0.01, seed: int = 0, log=None) -> float:
    """Adam with a cosine schedule, cross-entropy; returns the seconds it took."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x, y = _inputs(images), torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for k in range(0, len(x), batch):
            idx = order[k:k + batch]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}")
    model.eval()
    return time.perf_counter() - t0


def predict(model, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Brevitas' own classes (float evaluation of the quantized model)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for k in range(0, len(images), batch):
            out.append(model(_inputs(images[k:k + batch])).argmax(1).numpy())
    return np.concatenate(out)


def export(model, path: str | Path, image_shape=(28, 28)) -> Path:
    """``brevitas.export.export_qonnx``, as the user runs it."""
    import torch
    from brevitas.export import export_qonnx

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.onnx's notes about torchvision and dynamo
        export_qonnx(model, input_t=torch.rand(1, 1, *image_shape), export_path=str(path))
    return Path(path)
