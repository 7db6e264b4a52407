"""Training loop: ``gxnor train``.

Writes into the run directory: ``checkpoint.pt`` (after every epoch, atomically),
``metrics.json`` (per-epoch loss, accuracy, sparsity, transitions, time, memory) and
``curves.png``.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gxnor.base import files
from gxnor.base.errors import InputError, StageFailed

from . import checkpoint, data, nets, zn
from .dst import DST
from .layers import DiscreteConv2d, DiscreteLinear


def squared_hinge(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    target = F.one_hot(labels, scores.shape[1]).to(scores.dtype) * 2 - 1
    return torch.clamp(1 - target * scores, min=0).pow(2).mean()


def loss_fn(name: str, label_smoothing: float = 0.0):
    if name == "ce":
        if label_smoothing:
            return lambda scores, y: F.cross_entropy(scores, y, label_smoothing=label_smoothing)
        return F.cross_entropy
    if name == "hinge":
        return squared_hinge
    raise InputError(f"unknown loss {name!r}; expected 'ce' or 'hinge'")


def weight_sparsity(net: nets.GxnorNet) -> list[float]:
    out = []
    for layer in net.discrete_layers():
        z = zn.zero_state(layer.n_bits)
        st = layer.states()
        out.append(0.0 if z is None else float((st == z).float().mean()))
    return out


@torch.no_grad()
def evaluate(net: nets.GxnorNet, split: data.Split, batch: int = 1000, loss_name: str = "ce"):
    """Accuracy, loss, per-hidden-layer activation sparsity (and input sparsity)."""
    net.eval()
    lf = loss_fn(loss_name)
    correct, loss_sum = 0, 0.0
    zeros = None
    input_zeros = 0.0
    n = len(split)
    dev = net.device
    for s in range(0, n, batch):
        x = net.prepare(torch.from_numpy(split.images[s:s + batch])).to(dev)
        y = torch.from_numpy(split.labels[s:s + batch]).to(dev)
        scores, hidden = net(x, return_hidden=True)
        loss_sum += float(lf(scores, y)) * len(y)
        correct += int((scores.argmax(1) == y).sum())
        input_zeros += float((x == 0).float().mean()) * len(y)
        z = [float((h == 0).float().mean()) * len(y) for h in hidden]
        zeros = z if zeros is None else [a + b for a, b in zip(zeros, z, strict=True)]
    return {
        "accuracy": correct / n,
        "loss": loss_sum / n,
        "input_sparsity": input_zeros / n,
        "activation_sparsity": [z / n for z in (zeros or [])],
    }


def per_weight_state_bytes(net: nets.GxnorNet, opt) -> float:
    """Bytes kept between steps per weight: weight storage + per-weight optimizer state."""
    n = net.num_weights()
    total = 0
    for layer in net.discrete_layers():
        if isinstance(layer, (DiscreteLinear, DiscreteConv2d)):
            total += layer.state.numel() * layer.state.element_size()
        else:
            total += layer.latent.numel() * layer.latent.element_size()
    if isinstance(opt, DST):
        total += opt.state_bytes()
    else:
        latents = {id(layer.latent) for layer in net.discrete_layers()}
        for p, st in opt.state.items():
            if id(p) in latents:
                total += sum(v.numel() * v.element_size() for v in st.values()
                             if torch.is_tensor(v) and v.shape == p.shape)
    return total / n


def random_shift(images: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each (B, H, W) uint8 image by up to ``max_shift`` pixels; zeros come in."""
    if max_shift <= 0:
        return images
    b, h, w = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * s + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None])[:, :, None]
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, :]
    return padded[torch.arange(b)[:, None, None], rows, cols]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def lr_at(cfg: nets.NetConfig, epoch: int, epochs: int) -> float:
    """Exponential decay from cfg.lr (epoch 0) to cfg.lr_final (last epoch)."""
    if epochs <= 1:
        return cfg.lr
    return cfg.lr * (cfg.lr_final / cfg.lr) ** (epoch / (epochs - 1))


#: a training run folder (marker file; older ones held just these files)
KIND = files.Kind("run", "gxnor train",
                  recognize=files.only_files("checkpoint.pt", "metrics.json", "curves.png"))


def pick_device(name: str | None = None) -> torch.device:
    """``cuda`` when torch sees a GPU, else ``cpu`` (``name`` None or "auto"); an explicit
    "cuda" without a GPU is an input error."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: torch sees no GPU here (torch.cuda.is_available() is "
                         "False); use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise InputError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


def train(cfg: nets.NetConfig, out_dir: Path, seed: int = 0, data_dir=None,
          time_limit_min: float | None = None, progress: bool | None = None,
          threads: int | None = None, log=print, device: str | None = None) -> dict:
    """Train ``cfg`` into the run folder ``out_dir``, written atomically: while training, the
    checkpoint (every epoch), metrics and curves live in a hidden folder beside it that
    replaces ``out_dir`` when training ends (also after ``time_limit_min`` or Ctrl-C, with the
    epochs done so far). An existing ``out_dir`` must be a training run (see
    :mod:`gxnor.base.files`)."""
    cfg.validate()
    dev = pick_device(device)
    files.check(out_dir, KIND)
    ds = data.load(cfg.dataset, data_dir)  # a missing dataset fails before anything is made
    torch.manual_seed(seed)  # the initial weights
    net = nets.build(cfg, ds.input_shape)  # so does a shape that does not build
    if net.num_classes != ds.num_classes:
        raise InputError(f"config {cfg.name}: the last layer has {net.num_classes} outputs, the "
                         f"dataset {cfg.dataset} has {ds.num_classes} classes")
    if any(b.kind == "conv" for b in net.blocks):
        log("note: conv layers run in the layer pipeline (gxnor sim --schedule pipelined, "
            "gxnor build for the ECP5 boards); the iCEBreaker's shared engine runs fully "
            "connected layers only")
    log(f"training on {dev}" + (f" ({torch.cuda.get_device_name(dev)})"
                                if dev.type == "cuda" else ""))
    with files.output_dir(out_dir, KIND) as tmp:
        return _train(cfg, ds, net.to(dev), tmp, seed, time_limit_min, progress, threads, log)


def _train(cfg, ds, net, out_dir: Path, seed, time_limit_min, progress, threads, log) -> dict:
    if threads:
        torch.set_num_threads(threads)
    dev = net.device
    gen = torch.Generator().manual_seed(seed)  # data order and shifts (on the CPU)
    # the DST draws happen where the weights are
    dst_gen = gen if dev.type == "cpu" else torch.Generator(device=dev).manual_seed(seed)
    lf = loss_fn(cfg.loss, cfg.label_smoothing)
    bn_params = [p for b in net.blocks for p in b.bn.parameters()]
    bn_opt = torch.optim.Adam(bn_params, lr=cfg.bn_lr)
    if cfg.method == "dst":
        opt = DST(net.discrete_layers(), cfg.lr, m=cfg.m, proposal=cfg.proposal,
                  generator=dst_gen)
    elif cfg.method == "ste":
        opt = torch.optim.Adam([layer.latent for layer in net.discrete_layers()], lr=cfg.lr)
    else:
        raise InputError(f"unknown method {cfg.method!r}; expected 'dst' or 'ste'")

    x_all = torch.from_numpy(ds.train.images)
    y_all = torch.from_numpy(ds.train.labels)
    history = []
    started = time.perf_counter()
    train_seconds = 0.0
    meta = {"config": cfg.to_dict(), "seed": seed, "dataset": ds.name, "device": str(dev),
            "num_weights": net.num_weights(), "torch_threads": torch.get_num_threads()}
    summary: dict = {}
    for epoch in range(cfg.epochs):
        try:
            row = _epoch(cfg, net, opt, bn_opt, lf, ds, x_all, y_all, gen, epoch, progress)
        except KeyboardInterrupt:
            if not history:
                raise
            log(f"interrupted in epoch {epoch + 1}: the run keeps the {len(history)} epochs "
                "done")
            summary["interrupted"] = True
            break
        train_seconds += row["epoch_seconds"]
        history.append(row)
        log(f"epoch {epoch + 1:3d}/{cfg.epochs} loss {row['train_loss']:.4f} "
            f"train {row['train_accuracy'] * 100:6.2f}% test {row['test_accuracy'] * 100:6.2f}% "
            f"w0 {np.mean(row['weight_sparsity']) * 100:5.1f}% "
            f"a0 {np.mean(row['activation_sparsity'] or [0]) * 100:5.1f}% "
            f"{row['epoch_seconds']:6.1f}s")
        summary.update({**meta, "epochs_done": epoch + 1, "train_seconds": train_seconds,
                        "final": row, "history": history})
        checkpoint.save(net, out_dir / "checkpoint.pt", extra={"epoch": epoch + 1})
        _write_json(out_dir / "metrics.json", summary)
        if time_limit_min is not None and train_seconds > time_limit_min * 60:
            log(f"time limit of {time_limit_min} min reached after epoch {epoch + 1}")
            break
    summary["wall_seconds"] = time.perf_counter() - started
    _write_json(out_dir / "metrics.json", summary)
    plot(history, out_dir / "curves.png", cfg.name)
    return summary


def _epoch(cfg, net, opt, bn_opt, lf, ds, x_all, y_all, gen, epoch, progress) -> dict:
    """One epoch of training, then the test-set evaluation: the epoch's metrics row."""
    from tqdm import tqdm

    n = len(y_all)
    dev = net.device
    lr = lr_at(cfg, epoch, cfg.epochs)
    if isinstance(opt, DST):
        opt.set_lr(lr)
    else:
        for g in opt.param_groups:
            g["lr"] = lr
    net.train()
    t0 = time.perf_counter()
    order = torch.randperm(n, generator=gen)
    loss_sum, correct, transitions = 0.0, 0, 0
    batches = range(0, n, cfg.batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=(not progress) if progress is not None else None, file=sys.stderr)
    for s in bar:
        idx = order[s:s + cfg.batch_size]
        x = net.prepare(random_shift(x_all[idx], cfg.augment_shift, gen)).to(dev)
        y = y_all[idx].to(dev)
        scores = net(x)
        loss = lf(scores, y)
        bn_opt.zero_grad(set_to_none=True)
        if not isinstance(opt, DST):
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if isinstance(opt, DST):
            transitions += opt.step()
        else:
            opt.step()
        bn_opt.step()
        loss_sum += float(loss.detach()) * len(y)
        correct += int((scores.argmax(1) == y).sum())
    bar.close()
    epoch_seconds = time.perf_counter() - t0
    test = evaluate(net, ds.test, loss_name=cfg.loss)
    row = {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": loss_sum / n,
        "train_accuracy": correct / n,
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "weight_sparsity": weight_sparsity(net),
        "activation_sparsity": test["activation_sparsity"],
        "input_sparsity": test["input_sparsity"],
        "transitions": transitions if isinstance(opt, DST) else None,
        "epoch_seconds": epoch_seconds,
        "state_bytes_per_weight": per_weight_state_bytes(net, opt),
        "peak_rss_mb": peak_rss_mb(),
    }
    return row


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def plot(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ax[0].plot(ep, [h["train_loss"] for h in history], label="train")
    ax[0].plot(ep, [h["test_loss"] for h in history], label="test")
    ax[0].set_title("loss")
    ax[0].legend()
    ax[1].plot(ep, [100 * (1 - h["train_accuracy"]) for h in history], label="train")
    ax[1].plot(ep, [100 * (1 - h["test_accuracy"]) for h in history], label="test")
    ax[1].set_title("error %")
    ax[1].set_yscale("log")
    ax[1].legend()
    for i in range(len(history[0]["weight_sparsity"])):
        ax[2].plot(ep, [h["weight_sparsity"][i] for h in history], label=f"w{i} zeros")
    for i in range(len(history[0]["activation_sparsity"])):
        ax[2].plot(ep, [h["activation_sparsity"][i] for h in history], "--", label=f"a{i} zeros")
    ax[2].set_title("sparsity")
    ax[2].legend(fontsize=7)
    for a in ax:
        a.set_xlabel("epoch")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def parse_layers(text: str) -> list[tuple]:
    """``fc256,fc256,fc10`` or ``conv16k5,pool2,fc10`` -> NetConfig.layers."""
    import re

    out = []
    for token in text.split(","):
        t = token.strip().lower()
        if m := re.fullmatch(r"fc(\d+)", t):
            out.append(("fc", int(m[1])))
        elif m := re.fullmatch(r"conv(\d+)k(\d+)", t):
            out.append(("conv", int(m[1]), int(m[2])))
        elif m := re.fullmatch(r"pool(\d+)", t):
            out.append(("pool", int(m[1])))
        else:
            raise InputError(f"--layers {text!r}: {token!r} is not fcN, convCkK or poolQ (e.g. "
                             "conv16k5,pool2,fc128,fc10)")
        if min(out[-1][1:]) < 1 or max(out[-1][1:]) > 65536:
            raise InputError(f"--layers {text!r}: {token!r}: sizes must be 1..65536")
    if out[-1][0] != "fc":
        raise InputError(f"--layers {text!r}: the last layer must be fc (the class scores)")
    return out


def apply_sets(cfg: nets.NetConfig, items, reserved=("name", "layers"), note: str = "") -> None:
    """``--set FIELD=VALUE`` items onto ``cfg``, each value converted to the field's type;
    ``reserved`` fields cannot be set (``note`` says why)."""
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not hasattr(cfg, key) or key in reserved:
            raise InputError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of "
                             f"{[k for k in cfg.to_dict() if k not in reserved]}{note}")
        kind = type(getattr(cfg, key))
        try:
            setattr(cfg, key, kind(value))
        except ValueError:
            raise InputError(f"--set {item!r}: field '{key}' takes a {kind.__name__}: "
                             f"{value!r} is not a {kind.__name__}") from None


def format_layers(layers) -> str:
    """NetConfig.layers -> the ``--layers`` text (the inverse of :func:`parse_layers`)."""
    names = {"fc": "fc{}", "conv": "conv{}k{}", "pool": "pool{}"}
    return ",".join(names[x[0]].format(*x[1:]) for x in layers)


def main(args) -> dict | None:
    if args.list_configs:
        for name, cfg in nets.CONFIGS.items():
            print(f"{name:14s} {cfg.dataset:7s} {cfg.layers}")
        return None
    cfg = nets.get_config(args.config)
    if args.layers is not None:
        cfg.layers = parse_layers(args.layers)
    if args.data is not None:
        cfg.dataset = data.dataset_name(args.data)
    for key in ("epochs", "method", "proposal", "lr", "batch_size"):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, value)
    if args.lr is not None:
        cfg.lr_final = min(cfg.lr_final, args.lr)
    apply_sets(cfg, args.set)
    cfg.validate()
    out = args.out or Path("runs") / cfg.name
    summary = train(cfg, out, seed=args.seed, data_dir=args.data_dir, device=args.device,
                    time_limit_min=args.time_limit, progress=False if args.no_progress else None,
                    threads=args.threads)
    final = summary["final"]
    print(f"{cfg.name}: test accuracy {final['test_accuracy'] * 100:.2f}% after "
          f"{summary['epochs_done']} epochs ({summary['train_seconds']:.0f} s); run in {out}")
    if not math.isfinite(final["train_loss"]):
        raise StageFailed(f"{cfg.name}: training diverged (loss {final['train_loss']})")
    return summary
