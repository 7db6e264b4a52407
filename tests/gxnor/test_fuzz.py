"""Fuzzing the command line (issue 11): malformed manifests and random option values give exit
code 0 or 2, never a traceback, and touch no file outside the chosen output folder."""

import contextlib
import io
import json
import os
import shutil
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gxnor import cli
from gxnor.export.exporter import export_run
from gxnor.model.random_net import save_random

FUZZ = settings(max_examples=int(os.environ.get("GXNOR_FUZZ_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=6)


@pytest.fixture(scope="module")
def base_export(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_base")
    save_random(d / "run", [6, 4], input_shape=(1, 3, 3), seed=7)
    return export_run(d / "run", d / "export", lanes=4)


def snapshot(root, skip=()):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [n for n in dirnames if os.path.join(dirpath, n) not in skip]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            out[p] = (stat.S_IFMT(st_.st_mode), st_.st_size, st_.st_mtime_ns)
    return out


def run_cli(argv):
    """cli.main in-process: (exit code, stderr). An exception escaping main is a traceback."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
    return code, err.getvalue()


def mutate(data, manifest):
    """Delete or replace one value somewhere in the manifest (drawn path)."""
    node = manifest
    while True:
        keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and data.draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and data.draw(st.booleans()):
            del node[key]
        else:
            node[key] = data.draw(json_values)
        return


@FUZZ
@given(data=st.data())
def test_fuzzed_manifests(base_export, tmp_path_factory, data):
    work = tmp_path_factory.mktemp("fuzz")
    exp = work / "export"
    shutil.copytree(base_export, exp)
    m = json.loads((exp / "manifest.json").read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        mutate(data, m)
    (exp / "manifest.json").write_text(json.dumps(m))
    out = work / "rtl"
    before = snapshot(work)
    code, err = run_cli(["rtl", str(exp), "--out", str(out)])
    assert code in (0, 2), err
    if code == 2:
        assert "manifest.json" in err or "weights" in err, err
        assert not out.exists()
    assert snapshot(work, skip={str(out)}) == {k: v for k, v in before.items()
                                               if not k.startswith(str(out))}


OPTION_VALUES = st.one_of(st.integers(-10**6, 10**7).map(str), st.sampled_from(
    ["0", "-1", "1", "2", "1024", "1025", "1e3", "nan", "inf", "", "x", "0x10", "3.5"]))


@FUZZ
@given(data=st.data())
def test_fuzzed_options(base_export, tmp_path_factory, data, monkeypatch):
    """rtl / export / sim / build / run with random option values. The slow stage behind each
    command (simulation, place and route) is replaced by a stand-in, so what is fuzzed is the
    command line, its checks and its output folders."""
    work = tmp_path_factory.mktemp("fuzzopt")
    np.save(work / "imgs.npy", np.zeros((2, 3, 3), np.uint8))
    run_dir = base_export.parent / "run"
    out = work / "out"
    command = data.draw(st.sampled_from(["rtl", "export", "sim", "build", "run"]))
    v = lambda: data.draw(OPTION_VALUES)  # noqa: E731
    argv = {
        "rtl": ["rtl", str(base_export), "--out", str(out), "--lanes", v()],
        "export": ["export", str(run_dir), "--out", str(out), "--lanes", v()],
        "sim": ["sim", str(base_export), "--out", str(out), "--images", v()],
        "build": ["build", str(base_export), "--board", "icebreaker", "--out", str(out),
                  "--lanes", v(), "--clock", v(), "--baud", v()],
        "run": ["run", "--sim", "icarus", "--export-dir", str(base_export), "--out", str(out),
                "--lanes", v(), str(work / "imgs.npy")],
    }[command]
    stand_ins(monkeypatch)
    before = snapshot(base_export.parent) | snapshot(work)
    code, err = run_cli(argv)
    assert code in (0, 2), (argv, err)
    after = snapshot(base_export.parent) | snapshot(work, skip={str(out)})
    assert after == {k: v for k, v in before.items() if not k.startswith(str(out))}


def stand_ins(monkeypatch):
    """Quick stand-ins for the simulators and the FPGA tools."""
    from amaranth.build.run import BuildPlan

    from gxnor.host import simboard
    from gxnor.sim import golden
    from gxnor.verify import runner

    def fake_run(export_dir, images, build_dir, **kw):
        return {"checked": len(images), "images": len(images), "mismatches": 0,
                "cycles_per_image": 1.0, "images_per_s": 1.0, "cycles_per_s": 1.0,
                "simulator": "icarus", "log": "x"}

    def fake_board(export_dir, images, build_dir, **kw):
        res = golden.Network(export_dir).run(images)
        return {"info": {}, "results": [{"cls": int(c), "cycles": 1, "events": [], "scores": []}
                                        for c in res.classes]}

    def fake_execute(self, root):
        os = __import__("os")
        os.makedirs(root, exist_ok=True)
        for name in ("top.bin", "top.bit"):
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"\0" * 16)
        with open(os.path.join(root, "nextpnr-report.json"), "w") as f:
            json.dump({"fmax": {"clk": {"achieved": 1e3, "constraint": 1.0}},
                       "utilization": {}}, f)

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(simboard, "run_board", fake_board)
    monkeypatch.setattr(BuildPlan, "execute_local", fake_execute)
