import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gxnor.export import exporter
from gxnor.model import checkpoint
from gxnor.model.random_net import random_images, random_net, save_random
from gxnor.sim import golden


def _torch_layers(net, images):
    """Integer accumulators, batch-norm outputs and ternary outputs of the torch model."""
    x = net.prepare(torch.from_numpy(images))
    accs, ys, outs = [], [], []
    with torch.no_grad():
        for block in net.blocks:
            z = block.preactivation(x)
            accs.append(z.numpy())
            ys.append(block.bn(z).numpy())
            x = block(x)
            outs.append(x.numpy())
    return accs, ys, outs


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 23), min_size=1, max_size=3),
       classes=st.integers(2, 11), lanes=st.sampled_from([1, 3, 4, 8]),
       seed=st.integers(0, 10_000), zeros=st.floats(0.0, 0.9))
def test_golden_reproduces_torch_layers(tmp_path_factory, sizes, classes, lanes, seed, zeros):
    tmp = tmp_path_factory.mktemp("rt")
    net = random_net(sizes + [classes], input_shape=(1, 5, 3), seed=seed, weight_zeros=zeros)
    checkpoint.save(net, tmp / "run" / "checkpoint.pt")
    exporter.export_run(tmp / "run", tmp / "exp", lanes=lanes)
    g = golden.Network(tmp / "exp")
    images = random_images(64, (5, 3), density=0.4, seed=seed)
    res = g.run(images)
    accs, ys, outs = _torch_layers(net, images)
    same = np.ones(len(images), bool)  # images whose earlier layers agreed exactly
    for i, acc in enumerate(accs):
        assert np.array_equal(res.acc[i][same], acc[same].astype(np.int64)), f"layer {i} acc"
        if i == len(accs) - 1:
            break
        # identical, except where torch's float32 batch-norm output sits on a step (+-r) to
        # within float32 rounding: the only acceptable cause of a difference
        differ = res.out[i] != outs[i]
        on_step = np.abs(np.abs(ys[i]) - net.cfg.r) <= 1e-5 * (1 + np.abs(ys[i]))
        assert not np.any(differ[same] & ~on_step[same]), f"layer {i} activations"
        same &= ~differ.any(axis=1)
    # classes: equal unless the two best float scores are within the fixed-point rounding
    out = g.layers[-1].spec
    tolerance = (out["acc_max_abs"] + 1) / 2.0 ** out["output"]["frac_bits"]
    top2 = np.sort(ys[-1], axis=1)[:, -2:]
    close = (top2[:, 1] - top2[:, 0]) <= tolerance
    assert not np.any(same & (res.classes != ys[-1].argmax(1)) & ~close)
    assert same.mean() > 0.9  # ties are rare: most images must be compared end to end


def test_widths_not_multiple_of_lanes_pad_with_zero_codes(tmp_path):
    save_random(tmp_path / "run", [5, 3], input_shape=(1, 2, 2), seed=2)
    exporter.export_run(tmp_path / "run", tmp_path / "e", lanes=4)
    m = json.loads((tmp_path / "e" / "manifest.json").read_text())
    l0 = m["layers"][0]
    assert l0["rom"]["groups"] == 2 and l0["rom"]["words"] == 2 * 4
    raw = np.frombuffer((tmp_path / "e" / "layer0_weights.bin").read_bytes(), np.uint8)
    words = raw.reshape(8, 1)  # 4 lanes x 2 bits = 1 byte
    second_group = words[4:, 0]
    assert np.all((second_group >> 2) == 0)  # lanes 1..3 of group 1 are neurons 5..7: none


def test_accumulator_widths_cover_the_worst_case(tmp_path):
    save_random(tmp_path / "run", [7, 2], input_shape=(1, 28, 28), seed=1)
    exporter.export_run(tmp_path / "run", tmp_path / "e", lanes=8)
    m = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert m["layers"][0]["acc_max_abs"] == 784 * 255
    assert m["layers"][0]["acc_bits"] == 19
    assert m["layers"][1]["acc_max_abs"] == 7
    g = golden.Network(tmp_path / "e")
    full = np.full((1, 28, 28), 255, np.uint8)
    assert np.abs(g.run(full).acc[0]).max() <= 784 * 255


def _export(tmp_path, **kw):
    save_random(tmp_path / "run", [6, 4], input_shape=(1, 3, 3), seed=5, **kw)
    return exporter.export_run(tmp_path / "run", tmp_path / "e", lanes=4)


def test_bad_checkpoint_leaves_no_output(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(exporter.ExportError, match=r"checkpoint\.pt: not a readable"):
        exporter.export_run(tmp_path / "run", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_states_outside_the_set_are_rejected(tmp_path):
    net = random_net([4, 2], input_shape=(1, 2, 2), seed=0)
    net.blocks[1].layer.state[0, 0] = 7
    checkpoint.save(net, tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(exporter.ExportError, match=r"layer 1: field 'state' has values outside "
                                                   r"the state set 0\.\.2"):
        exporter.export_run(tmp_path / "run", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_nan_in_batch_norm_is_rejected(tmp_path):
    net = random_net([4, 2], input_shape=(1, 2, 2), seed=0)
    net.blocks[0].bn.running_var[1] = float("nan")
    checkpoint.save(net, tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(exporter.ExportError, match=r"layer 0: field 'blocks\.0\.bn\."
                                                   r"running_var' contains NaN"):
        exporter.export_run(tmp_path / "run", tmp_path / "out")


def test_reexport_replaces_atomically(tmp_path):
    out = _export(tmp_path)
    first = (out / "manifest.json").read_text()
    exporter.export_run(tmp_path / "run", out, lanes=2)
    assert json.loads((out / "manifest.json").read_text())["lanes"] == 2
    assert first != (out / "manifest.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e", "run"]
    shutil.rmtree(out)
