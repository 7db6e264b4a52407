import os
from pathlib import Path

import pytest
from hypothesis import settings

from gxnor.hw import toolchain

toolchain.setup()

# CI runs the same hypothesis examples every time (reproducible); locally they vary.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]


def mnist_dir() -> Path | None:
    for cand in (os.environ.get("GXNOR_DATA"), ROOT.parent / "shared" / "data" / "mnist"):
        if cand and (Path(cand) / "t10k-images-idx3-ubyte.gz").exists():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def mnist_path():
    path = mnist_dir()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have MNIST: GXNOR_DATA is not set to the IDX files")
        pytest.skip("MNIST IDX files not found (set GXNOR_DATA)")
    return path


@pytest.fixture(scope="session")
def random_export(tmp_path_factory):
    """Make (and cache) exports of random networks: random_export(sizes, lanes, seed=...)."""
    from gxnor.export.exporter import export_run
    from gxnor.model.random_net import save_random

    cache = {}
    base = tmp_path_factory.mktemp("random_exports")

    def make(sizes, lanes, input_shape=(1, 4, 4), **kwargs):
        key = (tuple(sizes), lanes, tuple(input_shape), tuple(sorted(kwargs.items())))
        if key not in cache:
            d = base / f"net{len(cache)}"
            save_random(d / "run", list(sizes), input_shape=input_shape, **kwargs)
            cache[key] = export_run(d / "run", d / "export", lanes=lanes)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def mnist_trained_export(tmp_path_factory, mnist_path):
    """The default iCE40 MLP trained for one epoch on MNIST (seconds), exported for P=8."""
    from gxnor.export.exporter import export_run
    from gxnor.model import nets, train

    base = tmp_path_factory.mktemp("mnist_trained")
    cfg = nets.get_config("mlp-ice40")
    cfg.epochs = 1
    cfg.proposal = "adam"
    cfg.lr = cfg.lr_final = 0.01
    summary = train.train(cfg, base / "run", seed=0, data_dir=mnist_path, progress=False,
                          log=lambda s: None)
    assert summary["final"]["test_accuracy"] > 0.85
    return export_run(base / "run", base / "export", lanes=8)
