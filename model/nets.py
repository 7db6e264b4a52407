"""Network configurations and the network module.

Every network is a chain of blocks, as in the reference code:

    discrete conv/linear (no bias) -> [max-pool] -> batch-norm -> discrete activation

and the last block ends at batch-norm (the class scores). Inputs are raw pixel values
0..255 as float: a black pixel is exactly 0 and every pre-activation of the first layer is an
integer, which is what the hardware computes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from gxnor.base.errors import InputError

from .layers import DiscreteConv2d, DiscreteLinear, LatentConv2d, LatentLinear
from .quant import MultiStep


@dataclass
class NetConfig:
    """Everything needed to rebuild and retrain a network. Saved in every checkpoint."""

    name: str
    dataset: str  # "mnist", "digits", or the path of an .npz / a folder of IDX files
    # ("fc", out) | ("conv", out_channels, kernel) | ("pool", size)
    layers: list = field(default_factory=list)
    n_bits: int = 1  # weight space Z_N
    act_bits: int = 1  # activation levels: 0 binary, 1 ternary
    r: float = 0.5  # activation step position
    a: float = 0.5  # derivative window half width
    window: str = "rect"
    method: str = "dst"  # "dst" or "ste"
    proposal: str = "norm"  # DST proposal
    m: float = 3.0  # DST transition non-linearity
    lr: float = 0.02
    lr_final: float = 0.001
    bn_lr: float = 0.005
    epochs: int = 20
    batch_size: int = 100
    loss: str = "ce"  # "ce" or "hinge" (squared hinge, as the reference)
    label_smoothing: float = 0.0  # ce only: the target's mass spread over the other classes
    augment_shift: int = 0  # random translation of training images by up to this many pixels
    bn_eps: float = 1e-4
    bn_momentum: float = 0.1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [list(x) for x in self.layers]
        return d

    def validate(self) -> NetConfig:
        """Check every field's type and range (the CLI's ``--set`` reaches them all); raises
        InputError naming the field. Returns ``self``."""
        import math

        from .dst import PROPOSALS
        from .quant import WINDOWS

        def bad(name, why):
            raise InputError(f"config {self.name}: field '{name}' = {getattr(self, name)!r}: "
                             f"{why}")

        if not isinstance(self.dataset, str) or not (
                self.dataset in ("mnist", "digits", "none") or self.dataset.endswith(".npz")
                or "/" in self.dataset):
            bad("dataset", "expected 'mnist', 'digits', an .npz file or a folder of IDX files")
        choices = {"window": WINDOWS,
                   "method": ("dst", "ste"), "proposal": PROPOSALS, "loss": ("ce", "hinge")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                bad(name, f"expected one of {list(allowed)}")
        ints = {"n_bits": (0, 6), "act_bits": (0, 3), "epochs": (1, 100_000),
                "batch_size": (1, 1_000_000), "augment_shift": (0, 8)}
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                bad(name, f"expected an integer in {lo}..{hi}")
        positive = ("a", "m", "lr", "lr_final", "bn_lr", "bn_eps")
        for name in (*positive, "r", "bn_momentum"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(name, "expected a finite number")
            if name in positive and v <= 0:
                bad(name, "expected a number > 0")
        if self.r < 0:
            bad("r", "expected a number >= 0")
        if not 0 <= self.bn_momentum <= 1:
            bad("bn_momentum", "expected a number in [0, 1]")
        v = self.label_smoothing
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            bad("label_smoothing", "expected a number in [0, 1)")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown config fields: {sorted(unknown)}")
        d = dict(d)
        d["layers"] = [tuple(x) for x in d.get("layers", [])]
        return cls(**d)


CONFIGS: dict[str, NetConfig] = {
    # 784-256-256-10: 268,800 ternary weights = 525 kbit, fits the UP5K's 1 Mbit SPRAM.
    # DST with Adam proposals, large batches (DST's stochastic rounding needs clean gradients:
    # at batch 100 it plateaus near 94%), one-pixel shifts against over-fitting.
    "mlp-ice40": NetConfig(
        "mlp-ice40", "mnist", [("fc", 256), ("fc", 256), ("fc", 10)], proposal="adam",
        epochs=120, lr=0.01, lr_final=0.0003, batch_size=1000, augment_shift=1),
    # 784-512-128-10: 468k weights = 0.94 Mbit, still fits the UP5K SPRAM; more accurate, slower.
    "mlp-ice40-wide": NetConfig(
        "mlp-ice40-wide", "mnist", [("fc", 512), ("fc", 128), ("fc", 10)], proposal="adam",
        epochs=120, lr=0.01, lr_final=0.0003, batch_size=1000, augment_shift=1),
    # 784-384-384-10: 301k weights = 0.9 Mbit, the widest two-hidden-layer MLP that fits the
    # UP5K SPRAM, with label smoothing 0.1: 98.16% in 8.3 min on one thread (97.63% without;
    # docs/BENCHMARKS.md); 1.5x the weights to stream.
    "mlp-ice40-384": NetConfig(
        "mlp-ice40-384", "mnist", [("fc", 384), ("fc", 384), ("fc", 10)], proposal="adam",
        epochs=200, lr=0.01, lr_final=0.0003, batch_size=1000, augment_shift=1,
        label_smoothing=0.1),
    # The paper's MNIST CNN: 32C5-MP2-64C5-MP2-512-10.
    "cnn-paper": NetConfig(
        "cnn-paper", "mnist",
        [("conv", 32, 5), ("pool", 2), ("conv", 64, 5), ("pool", 2), ("fc", 512), ("fc", 10)],
        # one-pixel shifts and label smoothing: 99.19% after 80 epochs (42 min, one thread)
        # against 98.81% without either (docs/BENCHMARKS.md)
        proposal="adam", epochs=80, lr=0.01, lr_final=0.0003, batch_size=500, augment_shift=1,
        label_smoothing=0.1),
    # Tiny net for the 8x8 digits: fast tests and the smallest FPGA demo.
    "mlp-digits": NetConfig(
        "mlp-digits", "digits", [("fc", 64), ("fc", 10)],
        epochs=40, lr=0.05, lr_final=0.005, batch_size=50),
}


def get_config(name: str) -> NetConfig:
    if name not in CONFIGS:
        raise InputError(f"unknown config {name!r}; known: {', '.join(CONFIGS)}")
    return NetConfig.from_dict(CONFIGS[name].to_dict())


class Block(nn.Module):
    """weight layer -> [max-pool] -> batch-norm -> [discrete activation]."""

    def __init__(self, layer: nn.Module, bn: nn.Module, act: nn.Module | None, pool: int = 0):
        super().__init__()
        self.layer, self.bn, self.act, self.pool = layer, bn, act, pool

    @property
    def kind(self) -> str:
        return "conv" if isinstance(self.layer, (DiscreteConv2d, LatentConv2d)) else "fc"

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """The integer-valued accumulator (after pooling): what the hardware computes."""
        if self.kind == "fc" and x.dim() > 2:
            x = x.flatten(1)
        z = self.layer(x)
        if self.pool:
            z = F.max_pool2d(z, self.pool)
        return z

    def forward(self, x):
        y = self.bn(self.preactivation(x))
        return self.act(y) if self.act is not None else y


class GxnorNet(nn.Module):
    """A chain of :class:`Block` built from a :class:`NetConfig`."""

    def __init__(self, cfg: NetConfig, input_shape: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        self.input_shape = tuple(input_shape)  # (C, H, W)
        latent = cfg.method == "ste"
        lin = LatentLinear if latent else DiscreteLinear
        conv = LatentConv2d if latent else DiscreteConv2d
        specs = list(cfg.layers)
        blocks = []
        c, h, w = self.input_shape
        flat = None
        i = 0
        while i < len(specs):
            spec = specs[i]
            pool = 0
            if i + 1 < len(specs) and specs[i + 1][0] == "pool":
                pool = int(specs[i + 1][1])
            last = all(s[0] == "pool" for s in specs[i + 1:])
            if spec[0] == "conv":
                if flat is not None:
                    raise InputError(f"config {cfg.name}: conv after fc is not supported")
                out_c, k = int(spec[1]), int(spec[2])
                layer = conv(c, out_c, k, n_bits=cfg.n_bits)
                c, h, w = out_c, h - k + 1, w - k + 1
                if pool:
                    h, w = h // pool, w // pool
                bn = nn.BatchNorm2d(out_c, eps=cfg.bn_eps, momentum=cfg.bn_momentum)
            elif spec[0] == "fc":
                n_in = flat if flat is not None else c * h * w
                out = int(spec[1])
                if pool:
                    raise InputError(f"config {cfg.name}: pooling after fc is not supported")
                layer = lin(n_in, out, n_bits=cfg.n_bits)
                flat = out
                bn = nn.BatchNorm1d(out, eps=cfg.bn_eps, momentum=cfg.bn_momentum)
            else:
                raise InputError(f"config {cfg.name}: unexpected layer spec {spec!r}")
            act = None if last else MultiStep(cfg.act_bits, cfg.r, cfg.a, cfg.window)
            blocks.append(Block(layer, bn, act, pool))
            i += 2 if pool else 1
        if blocks[-1].kind != "fc":
            raise InputError(f"config {cfg.name}: the last layer must be fc")
        self.blocks = nn.ModuleList(blocks)

    @property
    def device(self) -> torch.device:
        """Where the network's tensors live."""
        return self.blocks[0].bn.weight.device

    @property
    def num_classes(self) -> int:
        return self.blocks[-1].layer.out_features

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (B, H, W) -> float input (B, C, H, W), pixel values 0..255."""
        x = images.to(torch.float32)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return x

    def forward(self, x, return_hidden: bool = False):
        hidden = []
        for block in self.blocks:
            x = block(x)
            if block.act is not None:
                hidden.append(x)
        return (x, hidden) if return_hidden else x

    def discrete_layers(self):
        return [b.layer for b in self.blocks]

    def num_weights(self) -> int:
        return sum(layer.states().numel() for layer in self.discrete_layers())


def build(cfg: NetConfig, input_shape: tuple[int, ...]) -> GxnorNet:
    return GxnorNet(cfg, input_shape)
