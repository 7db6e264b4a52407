"""Checkpoints: integer weight states + batch-norm tensors + config, nothing executable.

Saved with ``torch.save`` and read back with ``torch.load(weights_only=True)``. Whatever the
training method, the checkpoint holds the *discrete* network: STE runs store the states their
latent weights round to, so export and evaluation treat every run alike.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from gxnor.base.errors import InputError

from .nets import GxnorNet, NetConfig

FORMAT = "gxnor-checkpoint"
VERSION = 1


class CheckpointError(InputError):
    """The file is not a usable gxnor checkpoint; the message names the file and field."""


def discrete_state_dict(net: GxnorNet) -> dict[str, torch.Tensor]:
    sd = {}
    for key, value in net.state_dict().items():
        if key.endswith(".latent"):
            continue
        sd[key] = value.detach().cpu().clone()  # a checkpoint loads anywhere
    for i, block in enumerate(net.blocks):
        sd[f"blocks.{i}.layer.state"] = block.layer.states().detach().cpu().clone()
    return sd


def save(net: GxnorNet, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write atomically (temp file + rename)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": net.cfg.to_dict(),
        "input_shape": list(net.input_shape),
        "state": discrete_state_dict(net),
        "extra": extra or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load(path: str | os.PathLike) -> tuple[GxnorNet, dict]:
    """The discrete network (eval mode) and the raw payload. Raises CheckpointError."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign/corrupt files
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: field 'format' is not {FORMAT!r} (a foreign file?)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: field 'version' is {payload.get('version')!r}, "
                              f"this gxnor reads version {VERSION}")
    try:
        cfg = NetConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: field 'config' is invalid ({exc})") from exc
    cfg.method = "dst"  # the stored network is discrete whatever trained it
    try:
        net = GxnorNet(cfg, tuple(payload["input_shape"]))
        net.load_state_dict(payload["state"], strict=True)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: field 'state' does not match the config ({exc})") from exc
    for i, block in enumerate(net.blocks):
        st = block.layer.state
        if st.dtype != torch.int8:
            raise CheckpointError(f"{path}: blocks.{i}.layer.state has dtype {st.dtype}, "
                                  "expected int8")
    net.eval()
    return net, payload
