"""gxnor explore: every row re-derived from its point's export, the Pareto flags, the Ray path."""

import json

import numpy as np
import pytest

from gxnor import explore
from gxnor.cli import main
from gxnor.hw.boards import board
from gxnor.hw.boards.build import choose_spec, predicted_throughput
from gxnor.model import data
from gxnor.sim import golden


@pytest.mark.slow
def test_sweep_rows_match_their_exports(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["explore", "--config", "mlp-digits", "--r", "0.25,1.5", "--layers", "fc32,fc10",
                 "--epochs", "2", "--jobs", "2", "--out", str(out)]) == 0
    report = json.loads((out / "explore.json").read_text())
    rows = report["points"]
    assert [r["r"] for r in rows] == [0.25, 1.5]
    ds = data.load_digits()
    b = board("icebreaker")
    for row in rows:
        exp = out / "points" / row["tag"] / "export"
        net = golden.Network(exp)
        assert net.export.manifest["activation"]["r"] == row["r"]
        res = net.run(ds.test.images)
        assert row["accuracy"] == pytest.approx(float(np.mean(res.classes == ds.test.labels)))
        assert row["events_mean"] == pytest.approx([float(e.mean()) for e in res.events])
        events = res.events.select(slice(0, 1000))
        spec, _ = choose_spec(exp, b, events)
        tp = predicted_throughput(spec, events, "", b.clock_hz, b.baud)
        assert row["images_per_s"] == pytest.approx(tp["core_images_per_s"])
        assert row["weight_bits"] == (64 * 32 + 32 * 10) * 2
    # a larger step zeroes more hidden activations
    assert rows[1]["hidden_zero_fraction"][0] > rows[0]["hidden_zero_fraction"][0]
    assert explore.pareto(rows) == [
        not any(o is not r and o["accuracy"] >= r["accuracy"]
                and o["images_per_s"] >= r["images_per_s"] for o in rows) for r in rows]
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "explore.md").read_text()
    assert table.count("\n| r") == 2 and "fc32,fc10" in table
    assert "2 points" in capsys.readouterr().out


def test_pareto_front():
    rows = [{"accuracy": a, "images_per_s": s} for a, s in
            [(0.9, 100), (0.95, 50), (0.85, 90), (0.95, 100), (0.7, 200)]]
    assert explore.pareto(rows) == [False, False, False, True, True]


@pytest.mark.slow
def test_ray_local_gives_the_same_row(tmp_path):
    """The Ray path (a local Ray instance) runs the same point function: same row."""
    args = ["explore", "--config", "mlp-digits", "--r", "0.5", "--epochs", "1",
            "--threads", "1", "--layers", "fc16,fc10"]
    assert main([*args, "--out", str(tmp_path / "a"), "--jobs", "1"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--ray", "local"]) == 0
    rows = [json.loads((tmp_path / d / "explore.json").read_text())["points"][0]
            for d in "ab"]
    for key in ("accuracy", "events_mean", "images_per_s", "weight_bits", "torch_accuracy"):
        assert rows[0][key] == rows[1][key], key


@pytest.mark.parametrize("opts,message", [
    (["--r", "a,b"], "comma-separated"),
    (["--r", "-1"], "is not a number >= 0"),
    (["--set", "epochs=3"], "sweep's own options"),
    (["--set", "lr=fast"], "not a float"),
    (["--layers", "fc16,relu,fc10"], "is not fcN"),
    (["--board", "nope"], "nope"),
])
def test_bad_options_exit_2_before_training(tmp_path, capsys, opts, message):
    out = tmp_path / "sweep"
    assert main(["explore", "--config", "mlp-digits", "--out", str(out), *opts]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
