import json

import pytest
import torch

from gxnor.base.errors import InputError
from gxnor.model import checkpoint, nets, train
from gxnor.model.layers import DiscreteConv2d, DiscreteLinear


def test_discrete_layer_has_no_float_weight_tensor():
    cfg = nets.get_config("cnn-paper")
    net = nets.build(cfg, (1, 28, 28))
    for block in net.blocks:
        layer = block.layer
        assert isinstance(layer, (DiscreteLinear, DiscreteConv2d))
        shape = layer.state.shape
        tensors = list(layer.parameters()) + list(layer.buffers())
        assert [t for t in tensors if t.is_floating_point() and t.shape == shape] == []
        assert layer.state.dtype == torch.int8


def test_cnn_shapes():
    net = nets.build(nets.get_config("cnn-paper"), (1, 28, 28))
    out = net(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)
    assert net.blocks[2].layer.in_features == 64 * 4 * 4


def test_config_round_trip_and_unknown_fields():
    cfg = nets.get_config("mlp-ice40")
    assert nets.NetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown config fields: \['bogus'\]"):
        nets.NetConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match=r"^unknown config 'nope'"):
        nets.get_config("nope")


@pytest.mark.parametrize("config", ["mlp-ice40", "mlp-ice40-wide", "mlp-ice40-384"])
def test_ice40_mlps_fit_the_spram(config):
    net = nets.build(nets.get_config(config), (1, 28, 28))
    assert net.num_weights() * 2 <= 1024 * 1024  # 2-bit codes in 1 Mbit


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dst", "ste"])
def test_digits_training_beats_chance_quickly(tmp_path, method):
    cfg = nets.get_config("mlp-digits")
    cfg.epochs = 2
    cfg.method = method
    if method == "ste":
        cfg.lr = cfg.lr_final = 0.01
    summary = train.train(cfg, tmp_path, seed=0, progress=False, log=lambda s: None)
    acc = summary["final"]["test_accuracy"]
    assert acc > 0.6, acc  # chance is 0.1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    row = metrics["history"][-1]
    assert len(row["activation_sparsity"]) == 1 and 0 <= row["activation_sparsity"][0] <= 1
    assert row["state_bytes_per_weight"] == (1.0 if method == "dst" else 12.0)
    if method == "dst":
        assert row["transitions"] > 0
    assert (tmp_path / "curves.png").stat().st_size > 1000
    net, payload = checkpoint.load(tmp_path)
    assert payload["config"]["method"] == method
    x = net.prepare(torch.zeros(1, 8, 8, dtype=torch.uint8))
    assert net(x).shape == (1, 10)


def test_training_is_deterministic(tmp_path):
    cfg = nets.get_config("mlp-digits")
    cfg.epochs = 1
    a = train.train(cfg, tmp_path / "a", seed=3, progress=False, log=lambda s: None)
    b = train.train(cfg, tmp_path / "b", seed=3, progress=False, log=lambda s: None)
    assert a["final"]["train_loss"] == b["final"]["train_loss"]
    sa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["state"]
    sb = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["state"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_foreign_and_corrupt_checkpoints(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"hello": torch.zeros(1)}, foreign)
    with pytest.raises(checkpoint.CheckpointError, match=r"foreign\.pt: field 'format'"):
        checkpoint.load(foreign)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match=r"junk\.pt: not a readable checkpoint"):
        checkpoint.load(junk)
    with pytest.raises(checkpoint.CheckpointError, match=r"no such checkpoint"):
        checkpoint.load(tmp_path / "missing.pt")


def test_checkpoint_with_mismatched_state(tmp_path):
    net = nets.build(nets.get_config("mlp-digits"), (1, 8, 8))
    path = checkpoint.save(net, tmp_path / "c.pt")
    payload = torch.load(path, weights_only=True)
    payload["state"]["blocks.0.layer.state"] = torch.zeros(3, 3, dtype=torch.int8)
    torch.save(payload, path)
    with pytest.raises(checkpoint.CheckpointError, match=r"c\.pt: field 'state' does not match"):
        checkpoint.load(path)


def test_an_interrupted_run_keeps_its_finished_epochs(tmp_path, monkeypatch):
    cfg = nets.get_config("mlp-digits")
    cfg.epochs = 5
    real = train._epoch
    calls = []

    def epoch(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the third epoch
        return real(*args)

    monkeypatch.setattr(train, "_epoch", epoch)
    summary = train.train(cfg, tmp_path / "run", seed=0, progress=False, log=lambda s: None)
    assert summary["interrupted"] and summary["epochs_done"] == 2
    assert checkpoint.load(tmp_path / "run")[1]["extra"]["epoch"] == 2
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_done"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left
    # interrupted before any epoch finished: nothing is written at all
    calls.clear()
    calls.extend([1, 1])
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, tmp_path / "run2", seed=0, progress=False, log=lambda s: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_layers_option_parses_and_refuses_bad_tokens():
    assert train.parse_layers("fc256,fc256,fc10") == [("fc", 256), ("fc", 256), ("fc", 10)]
    assert train.parse_layers("conv16k5,pool2,FC10") == [("conv", 16, 5), ("pool", 2),
                                                         ("fc", 10)]
    for bad, msg in (("fc256,relu,fc10", "'relu' is not"), ("fc0,fc10", "sizes must be"),
                     ("fc10,pool2", "last layer must be fc")):
        with pytest.raises(InputError, match=msg):
            train.parse_layers(bad)


def test_user_data_and_layers_from_the_command_line(tmp_path):
    """A user's .npz (4 classes, 6x5 images) and a layer list: trained, exported, and the
    export's test images come from that .npz."""
    import numpy as np

    from gxnor.cli import main
    from gxnor.export import format

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    images = np.zeros((400, 6, 5), np.uint8)
    images[np.arange(400), labels, :] = 200  # the class is the lit row
    path = tmp_path / "rows.npz"
    np.savez(path, x_train=images[:300], y_train=labels[:300], x_test=images[300:],
             y_test=labels[300:])
    run = tmp_path / "run"
    assert main(["train", "--config", "mlp-digits", "--data", str(path), "--layers",
                 "fc16,fc4", "--epochs", "8", "--out", str(run), "--no-progress",
                 "--device", "cpu"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["device"] == "cpu" and metrics["final"]["test_accuracy"] > 0.9
    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0
    exp = format.load(tmp_path / "exp")
    assert exp.input_shape == (1, 6, 5) and exp.layers[-1].n_out == 4
    assert np.array_equal(format.dataset_images(exp, 10), images[300:310])
    # a last layer that does not match the classes, and a GPU that is not there
    assert main(["train", "--config", "mlp-digits", "--data", str(path), "--layers",
                 "fc16,fc10", "--out", str(tmp_path / "r2")]) == 2
    if not torch.cuda.is_available():
        assert main(["train", "--config", "mlp-digits", "--device", "cuda", "--out",
                     str(tmp_path / "r3")]) == 2
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_label_smoothing_is_a_checked_config_field():
    import torch.nn.functional as F

    cfg = nets.get_config("mlp-digits")
    cfg.label_smoothing = 0.1
    cfg.validate()
    scores, y = torch.randn(5, 10), torch.arange(5)
    assert torch.allclose(train.loss_fn("ce", 0.1)(scores, y),
                          F.cross_entropy(scores, y, label_smoothing=0.1))
    assert not torch.allclose(train.loss_fn("ce", 0.1)(scores, y), F.cross_entropy(scores, y))
    cfg.label_smoothing = 1.0
    with pytest.raises(InputError, match="label_smoothing"):
        cfg.validate()
