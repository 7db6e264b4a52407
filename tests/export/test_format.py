"""The export reader and validator (gxnor.export.format): every field, file and consistency
rule, with errors that name the file, the layer and the field."""

import json

import pytest

from gxnor.export import exporter, format
from gxnor.model.random_net import save_random


def _export(tmp_path, **kw):
    save_random(tmp_path / "run", [6, 4], input_shape=(1, 3, 3), seed=5, **kw)
    return exporter.export_run(tmp_path / "run", tmp_path / "e", lanes=4)


def test_corrupted_rom_is_rejected(tmp_path):
    out = _export(tmp_path)
    p = out / "layer1_weights.bin"
    data = bytearray(p.read_bytes())
    data[0] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(format.ExportFormatError, match=r"layer1_weights\.bin: SHA-256 .* "
                                                       r"layers\[1\]\.rom\.bin sha256"):
        format.load(out)


def test_corrupted_manifest_is_rejected(tmp_path):
    out = _export(tmp_path)
    (out / "manifest.json").write_text("{ not json")
    with pytest.raises(format.ExportFormatError, match=r"manifest\.json: not valid JSON"):
        format.load(out)


def test_manifest_with_wrong_threshold_count(tmp_path):
    out = _export(tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    m["layers"][0]["output"]["lo"].pop()
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(format.ExportFormatError,
                       match=r"layers\[0\]\.output\.lo: 5 values, expected 6"):
        format.load(out)


