"""``gxnor export``: a training checkpoint -> integer ROM images + ``manifest.json``.

The format is specified in docs/FORMAT.md. Everything the hardware and the golden model need
is an integer computed here, once: weight codes packed P lanes to a word, folded thresholds,
fixed-point class scores, accumulator widths. The output directory is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from gxnor.base import files, limits
from gxnor.base.errors import InputError
from gxnor.model import zn

from . import codes, format, thresholds
from .format import FORMAT, FORMAT_VERSION, MANIFEST, PIXEL_BITS, TIE_BREAK


class ExportError(InputError):
    """Bad input to the exporter; the message names the file, layer and field."""


def is_export(folder: Path) -> bool:
    """``folder`` holds a gxnor export (its manifest names the format)."""
    try:
        m = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and m.get("format") == FORMAT


#: an export folder is identified by its manifest (docs/FORMAT.md): no marker file
KIND = files.Kind("export", "gxnor export", recognize=is_export, marker=False)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _layer_tensors(sd: dict, i: int, path: Path):
    def get(name):
        key = f"blocks.{i}.{name}"
        if key not in sd:
            raise ExportError(f"{path}: layer {i}: field '{key}' missing from the checkpoint")
        t = sd[key].detach().cpu().numpy()
        if t.dtype.kind == "f" and not np.all(np.isfinite(t)):
            raise ExportError(f"{path}: layer {i}: field '{key}' contains NaN or inf")
        return t

    return get


def layer_entry(index: int, kind: str, w2: np.ndarray, n_bits: int, lanes: int, roms: list,
                **shape) -> tuple[dict, int]:
    """A layer's manifest entry up to its ``output`` (docs/FORMAT.md): ``shape`` holds its
    type's shape fields in manifest order; the input kind and the accumulator bound M follow
    from its position and its integer weights ``w2`` (out, fan-in). Its ROM image is appended
    to ``roms``. Returns (entry, M)."""
    n_out = w2.shape[0]
    width = codes.code_bits(n_bits)
    max_abs = format.acc_bound(index, w2)
    stem = f"layer{index}_weights"
    data = codes.pack_rom(codes.encode(codes.rom_lanes(w2, lanes), n_bits), width)
    entry = {"index": index, "type": kind, "input": format.input_kind(index), "n_bits": n_bits,
             **shape, "acc_max_abs": max_abs, "acc_bits": thresholds.signed_bits(max_abs),
             "rom": {"hex": stem + ".hex", "bin": stem + ".bin", "words": int(len(data)),
                     "word_bits": lanes * width, "word_bytes": int(data.shape[1]),
                     "groups": math.ceil(n_out / lanes), "lanes": lanes, "code_bits": width,
                     "order": "address = group * in + input_index; lane j of group g = "
                              "output g*lanes + j"}}
    roms.append((stem, data, lanes * width))
    return entry, max_abs


def hidden_output(kind: str, flip, lo, hi, max_abs: int) -> dict:
    """The ``output`` object of a hidden layer (docs/FORMAT.md)."""
    return {"kind": kind, "threshold_bits": thresholds.signed_bits(max_abs + 1),
            "flip": np.asarray(flip).tolist(), "lo": np.asarray(lo).tolist(),
            "hi": np.asarray(hi).tolist()}


def score_output(a, b, max_abs: int) -> dict:
    """The ``output`` object of the last layer: y = a * acc + b as fixed-point scores."""
    frac, coef, offset, score_bits = thresholds.fixed_point_scores(a, b, max_abs)
    return {"kind": "scores", "frac_bits": frac, "coef_bits": thresholds.COEF_BITS,
            "offset_bits": thresholds.OFFSET_BITS, "score_bits": score_bits,
            "coef": coef.tolist(), "offset": offset.tolist(), "tie_break": TIE_BREAK}


def make_manifest(source: dict, input_shape, n_bits: int, act_kind: str, r: float,
                  lanes: int, layers: list) -> dict:
    """The top level of ``manifest.json`` around finished layer entries."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": source,
        "input": {"shape": [int(d) for d in input_shape], "bits": PIXEL_BITS,
                  "encoding": "unsigned pixel, 0 = black (no event)"},
        "weights": {"n_bits": n_bits, "states": zn.num_states(n_bits),
                    "code_bits": codes.code_bits(n_bits), "code": codes.code_object(n_bits)},
        "activation": {"kind": act_kind, "r": r},
        "lanes": lanes,
        "num_classes": int(layers[-1]["out"]),
        "layers": layers,
    }


def build_manifest(net, payload: dict, ckpt_path: Path, lanes: int) -> tuple[dict, list]:
    """The manifest dict and the ROM arrays to write: [(stem, word_bytes array, word_bits)]."""
    cfg = net.cfg
    limits.LANES.check(lanes)
    sd = payload["state"]
    n_states = zn.num_states(cfg.n_bits)
    wscale = zn.integer_scale(cfg.n_bits, 1.0)
    if cfg.act_bits not in (0, 1):
        raise ExportError(f"{ckpt_path}: field 'config.act_bits' = {cfg.act_bits}: only binary "
                          "(0) and ternary (1) activations export to integer thresholds")
    c, h, w = net.input_shape
    shape = (c, h, w)
    layers, roms = [], []
    for i, block in enumerate(net.blocks):
        get = _layer_tensors(sd, i, ckpt_path)
        state = get("layer.state")
        if state.dtype != np.int8:
            raise ExportError(f"{ckpt_path}: layer {i}: field 'state' has dtype {state.dtype}, "
                              "expected int8")
        if state.min() < 0 or state.max() >= n_states:
            raise ExportError(f"{ckpt_path}: layer {i}: field 'state' has values outside the "
                              f"state set 0..{n_states - 1} of Z_{cfg.n_bits}")
        w_int = zn.weight_integers(state, cfg.n_bits)
        kind = block.kind
        if kind == "fc":
            n_in = int(np.prod(shape))
            if w_int.ndim != 2 or w_int.shape[1] != n_in:
                raise ExportError(f"{ckpt_path}: layer {i}: field 'state' has shape "
                                  f"{w_int.shape}, but the previous layer gives {n_in} inputs")
            n_out = w_int.shape[0]
            w2 = w_int
            fields = {"in": n_in, "out": n_out}
            out_shape = (n_out,)
        else:
            oc, ic, k, _ = w_int.shape
            if ic != shape[0]:
                raise ExportError(f"{ckpt_path}: layer {i}: conv has {ic} input channels, the "
                                  f"previous layer gives {shape[0]}")
            pad = int(block.layer.padding)
            oh, ow = shape[1] + 2 * pad - k + 1, shape[2] + 2 * pad - k + 1
            pool = int(block.pool or 0)
            if pool:
                oh, ow = oh // pool, ow // pool
            # flatten each filter in (channel, row, col) order: input index = c*k*k + y*k + x
            w2 = w_int.reshape(oc, ic * k * k)
            n_in, n_out = ic * k * k, oc
            fields = {"in_shape": list(shape), "out_channels": oc, "kernel": k,
                      "padding": pad, "pool": pool, "in": n_in, "out": n_out,
                      "out_shape": [oc, oh, ow]}
            out_shape = (oc, oh, ow)
        entry, max_abs = layer_entry(i, kind, w2, cfg.n_bits, lanes, roms, **fields)
        # batch-norm fold
        gamma, beta = get("bn.weight"), get("bn.bias")
        mean, var = get("bn.running_mean"), get("bn.running_var")
        if not (gamma.shape == beta.shape == mean.shape == var.shape == (n_out,)):
            raise ExportError(f"{ckpt_path}: layer {i}: batch-norm tensors have shape "
                              f"{gamma.shape}, expected ({n_out},)")
        if np.any(var < 0):
            raise ExportError(f"{ckpt_path}: layer {i}: field 'bn.running_var' is negative")
        a, b = thresholds.affine(gamma, beta, mean, var, cfg.bn_eps, wscale)
        last = i == len(net.blocks) - 1
        if not last:
            if cfg.act_bits == 1:
                flip, lo, hi = thresholds.fold_ternary(a, b, cfg.r, max_abs)
            else:
                flip, lo, hi = thresholds.fold_binary(a, b, max_abs)
            entry["output"] = hidden_output("ternary" if cfg.act_bits == 1 else "binary",
                                            flip, lo, hi, max_abs)
        else:
            if kind != "fc":
                raise ExportError(f"{ckpt_path}: layer {i}: the last layer must be fc")
            entry["output"] = score_output(a, b, max_abs)
        layers.append(entry)
        shape = out_shape if len(out_shape) == 3 else (out_shape[0], 1, 1)
    source = {"checkpoint": ckpt_path.name, "sha256": sha256_file(ckpt_path),
              "config": cfg.to_dict()}
    manifest = make_manifest(source, net.input_shape, cfg.n_bits,
                             "ternary" if cfg.act_bits == 1 else "binary", cfg.r, lanes, layers)
    return manifest, roms


def write_export(manifest: dict, roms: list, out: Path, inputs=()) -> Path:
    """Write ROM files and the manifest into ``out`` atomically (temp dir + rename); an
    existing ``out`` is replaced only if it is an export (see :mod:`gxnor.base.files`)."""
    with files.output_dir(out, KIND, inputs) as tmp:
        for (stem, data, word_bits), layer in zip(roms, manifest["layers"], strict=True):
            (tmp / f"{stem}.bin").write_bytes(data.tobytes())
            lines = codes.hex_lines(data, word_bits)
            (tmp / f"{stem}.hex").write_text("\n".join(lines) + "\n")
            layer["rom"]["sha256"] = {
                "hex": sha256_file(tmp / f"{stem}.hex"),
                "bin": sha256_file(tmp / f"{stem}.bin"),
            }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return Path(out)


def export_run(run_dir: Path, out: Path, lanes: int = 8) -> Path:
    from gxnor.model import checkpoint

    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt" if run_dir.is_dir() else run_dir
    files.check(out, KIND, [run_dir])  # before the (slow) checkpoint load
    try:
        net, payload = checkpoint.load(ckpt)
    except checkpoint.CheckpointError as exc:
        raise ExportError(str(exc)) from exc
    manifest, roms = build_manifest(net, payload, ckpt, lanes)
    return write_export(manifest, roms, out, inputs=[run_dir])
