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




def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def _write(out, m):
    (out / "manifest.json").write_text(json.dumps(m))


# (what the mutation does, mutation, the error: file, layer and field named)
MUTATIONS = [
    ("flip = 2", lambda m: m["layers"][0]["output"]["flip"].__setitem__(0, 2),
     r"layers\[0\]\.output\.flip\[0\]: 2 is outside 0\.\.1"),
    ("score_bits too small", lambda m: m["layers"][1]["output"].__setitem__("score_bits", 4),
     r"layers\[1\]\.output\.score_bits: is 4, expected \d+"),
    ("input.shape contradicts in", lambda m: m["input"].__setitem__("shape", [1, 4, 4]),
     r"layers\[0\]\.in: 9, but the layer's input \[1, 4, 4\] has 16 values"),
    ("no acc_max_abs", lambda m: m["layers"][1].pop("acc_max_abs"),
     r"layers\[1\]\.acc_max_abs: missing"),
    ("no acc_bits", lambda m: m["layers"][0].pop("acc_bits"), r"layers\[0\]\.acc_bits: missing"),
    ("no threshold_bits", lambda m: m["layers"][0]["output"].pop("threshold_bits"),
     r"layers\[0\]\.output\.threshold_bits: missing"),
    ("float coef", lambda m: m["layers"][1]["output"]["coef"].__setitem__(1, 0.5),
     r"layers\[1\]\.output\.coef\[1\]: expected an integer, got 0\.5"),
    ("lo is a string", lambda m: m["layers"][0]["output"].__setitem__("lo", "x"),
     r"layers\[0\]\.output\.lo: expected a list of 6 integers, got \"x\""),
    ("acc_bits 15.5", lambda m: m["layers"][0].__setitem__("acc_bits", 15.5),
     r"layers\[0\]\.acc_bits: is 15\.5, expected \d+"),
    ("acc_bits true", lambda m: m["layers"][0].__setitem__("acc_bits", True),
     r"layers\[0\]\.acc_bits: is true, expected \d+"),
    ("lo >= hi", lambda m: (m["layers"][0]["output"]["lo"].__setitem__(0, 0),
                            m["layers"][0]["output"]["hi"].__setitem__(0, 0)),
     r"layers\[0\]\.output\.lo: lo >= hi for neuron 0"),
    ("rom file outside the folder", lambda m: m["layers"][0]["rom"].__setitem__(
        "bin", "../x.bin"), r"layers\[0\]\.rom\.bin: '\.\./x\.bin' is not a plain file name"),
    ("lanes", lambda m: m.__setitem__("lanes", 3), r"layers\[0\]\.rom\.lanes: is 4, expected 3"),
    ("lanes out of range", lambda m: m.__setitem__("lanes", 5000), r"lanes: 5000 is outside"),
    ("num_classes", lambda m: m.__setitem__("num_classes", 5),
     r"num_classes: 5, but the last layer has 4 outputs"),
    ("hidden layer with scores", lambda m: m["layers"][0]["output"].__setitem__("kind", "scores"),
     r"layers\[0\]\.output\.kind: 'scores' is not one of \['ternary'\]"),
    ("format_version", lambda m: m.__setitem__("format_version", 2),
     r"format_version: is 2, expected 1"),
    ("no layers", lambda m: m.__setitem__("layers", []), r"layers: expected a non-empty list"),
    ("code object", lambda m: m["weights"]["code"].__setitem__("neg", 2), r"weights\.code: is"),
    ("sha256 shape", lambda m: m["source"].__setitem__("sha256", "abc"),
     r"source\.sha256: expected 64 lower-case hex digits"),
    ("tie break", lambda m: m["layers"][1]["output"].__setitem__("tie_break", "random"),
     r"layers\[1\]\.output\.tie_break: is \"random\""),
    ("a layer that is a list", lambda m: m["layers"].__setitem__(0, [1]),
     r"layers\[0\]: expected an object, got \[1\]"),
]


@pytest.mark.parametrize("what, mutate, error", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_manifest_field_errors_name_the_file_layer_and_field(tmp_path, what, mutate, error):
    out = _export(tmp_path)
    format.load(out)  # the unmutated export is fine
    m = _manifest(out)
    mutate(m)
    _write(out, m)
    with pytest.raises(format.ExportFormatError, match=r"manifest\.json: " + error):
        format.load(out)


def test_hex_that_disagrees_with_the_bin_is_rejected(tmp_path):
    out = _export(tmp_path)
    m = _manifest(out)
    hexfile = out / m["layers"][1]["rom"]["hex"]
    lines = hexfile.read_text().splitlines()
    lines[2] = format_word = f"{int(lines[2], 16) ^ 0b01:0{len(lines[2])}x}"
    hexfile.write_text("\n".join(lines) + "\n")
    import hashlib

    m["layers"][1]["rom"]["sha256"]["hex"] = hashlib.sha256(hexfile.read_bytes()).hexdigest()
    _write(out, m)  # both hashes valid: only the contents disagree
    with pytest.raises(format.ExportFormatError,
                       match=rf"layer1_weights\.hex: layers\[1\]\.rom\.hex: word 2 is "
                             rf"'{format_word}', the \.bin holds"):
        format.load(out)


def test_padding_bits_and_padding_lanes_must_be_zero(tmp_path):
    import hashlib

    save_random(tmp_path / "run", [5, 3], input_shape=(1, 2, 2), seed=2)
    out = exporter.export_run(tmp_path / "run", tmp_path / "e", lanes=3)  # 6-bit words
    m = _manifest(out)
    binfile = out / m["layers"][0]["rom"]["bin"]
    data = bytearray(binfile.read_bytes())

    def rewrite(data):
        binfile.write_bytes(bytes(data))
        m["layers"][0]["rom"]["sha256"]["bin"] = hashlib.sha256(bytes(data)).hexdigest()
        _write(out, m)

    rewrite(bytearray([data[0] | 0x80]) + data[1:])  # bit 7 of a 6-bit word
    with pytest.raises(format.ExportFormatError, match=r"word 0 has padding bits set above "
                                                       r"bit 5"):
        format.load(out)
    last = len(data) - 1  # group 1 holds neurons 3, 4 and the padding lane 5
    rewrite(data[:last] + bytearray([data[last] | 0b010000]))
    with pytest.raises(format.ExportFormatError, match=r"lanes past output 4 hold nonzero weights"):
        format.load(out)


def test_a_missing_manifest_or_folder(tmp_path):
    with pytest.raises(format.ExportFormatError, match=r"manifest\.json: missing"):
        format.load(tmp_path / "nowhere")
