"""Output folders: atomic, and never a replacement for something that is not the same kind of
output (issue 11: `gxnor export RUN --out RUN` used to delete the run)."""

import json
import os
import stat

import numpy as np
import pytest

from gxnor import cli
from gxnor.base import files
from gxnor.model.random_net import save_random

KIND = files.Kind("thing", "gxnor thing")


def snapshot(root):
    """Every path under ``root`` with its size and mtime: what 'untouched' means."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def run_dir(tmp_path):
    save_random(tmp_path / "runs" / "r", [5, 3], input_shape=(1, 3, 3), seed=1)
    (tmp_path / "runs" / "r" / "metrics.json").write_text("{}")
    return tmp_path / "runs" / "r"


@pytest.mark.parametrize("target", ["run", "parent", "cwd", "file", "project"])
def test_export_refuses_what_is_not_an_export(tmp_path, run_dir, monkeypatch, capsys, target):
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("mine")
    (tmp_path / "notes.txt").write_text("keep me")
    monkeypatch.chdir(project if target == "cwd" else tmp_path)
    out = {"run": run_dir, "parent": run_dir.parent, "cwd": ".", "file": tmp_path / "notes.txt",
           "project": project}[target]
    before = snapshot(tmp_path)
    code = cli.main(["export", str(run_dir), "--out", str(out), "--lanes", "4"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INPUT, err
    assert "refusing to replace" in err or "input" in err
    assert str(out) in err
    assert snapshot(tmp_path) == before  # nothing touched, nothing hidden left behind


def test_export_replaces_an_export_and_follows_the_umask(tmp_path, run_dir):
    out = tmp_path / "e"
    assert cli.main(["export", str(run_dir), "--out", str(out), "--lanes", "4"]) == 0
    assert cli.main(["export", str(run_dir), "--out", str(out), "--lanes", "2"]) == 0
    assert json.loads((out / "manifest.json").read_text())["lanes"] == 2
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e", "runs"]


def test_every_writing_command_refuses_a_foreign_folder(tmp_path, run_dir, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    exp = tmp_path / "exp"
    assert cli.main(["export", str(run_dir), "--out", str(exp), "--lanes", "4"]) == 0
    np.save(tmp_path / "imgs.npy", np.zeros((4, 3, 3), np.uint8))
    before = snapshot(foreign)
    commands = [
        ["rtl", str(exp), "--out", str(foreign)],
        ["train", "--config", "mlp-digits", "--out", str(foreign)],
        ["sim", str(exp), "--out", str(tmp_path), "--images", "1"],  # OUT/NAME: tmp/exp
        ["build", str(exp), "--board", "icebreaker", "--out", str(tmp_path / "x"),
         "--baud", "115200"],
        ["run", "--sim", "icarus", "--export-dir", str(exp), "--out", str(foreign),
         str(tmp_path / "imgs.npy")],
        ["bench", "golden", "--out", str(foreign)],
    ]
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "icebreaker").write_text("a file where the build folder would go")
    for args in commands:
        code = cli.main(args)
        err = capsys.readouterr().err
        assert code == cli.EXIT_INPUT, (args, err)
        assert "refusing to replace" in err or "is the command's input" in err, (args, err)
    assert snapshot(foreign) == before
    assert (tmp_path / "x" / "icebreaker").read_text().startswith("a file")


def test_rtl_into_the_export_itself_is_refused(tmp_path, run_dir, capsys):
    exp = tmp_path / "exp"
    assert cli.main(["export", str(run_dir), "--out", str(exp), "--lanes", "4"]) == 0
    before = snapshot(tmp_path)
    assert cli.main(["rtl", str(exp), "--out", str(exp)]) == cli.EXIT_INPUT
    assert cli.main(["rtl", str(exp), "--out", str(tmp_path)]) == cli.EXIT_INPUT
    assert "contains the command's input" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_a_failing_write_leaves_nothing_behind(tmp_path):
    dest = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError, match="midway"), files.output_dir(dest, KIND) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []  # no temporary folder, no parents it made
    with files.output_dir(dest, KIND) as tmp:
        (tmp / "whole.txt").write_text("whole")
    assert sorted(p.name for p in dest.iterdir()) == [files.MARKER, "whole.txt"]
    assert files.marker_kind(dest) == "thing"
    # the same kind is replaced, wholesale
    with files.output_dir(dest, KIND) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == [files.MARKER, "new.txt"]
    # an interrupted replacement keeps the previous output
    with pytest.raises(KeyboardInterrupt), files.output_dir(dest, KIND) as tmp:
        raise KeyboardInterrupt
    assert sorted(p.name for p in dest.iterdir()) == [files.MARKER, "new.txt"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out"]


def test_other_kinds_and_links_are_refused(tmp_path):
    dest = tmp_path / "out"
    with files.output_dir(dest, KIND) as tmp:
        (tmp / "x").write_text("x")
    other = files.Kind("other", "gxnor other")
    with pytest.raises(files.OutputError, match=r"not a gxnor other output folder"):
        files.check(dest, other)
    (tmp_path / "link").symlink_to(dest)
    with pytest.raises(files.OutputError, match="symbolic link"):
        files.check(tmp_path / "link", KIND)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert files.check(empty, other) == empty  # an empty folder holds nothing to lose


def test_json_report_replaces_only_its_own_kind(tmp_path):
    own = files.is_json_of("kind", "report")
    p = tmp_path / "r.json"
    files.write_file(p, json.dumps({"kind": "report", "n": 1}), may_replace=own, what="--json")
    files.write_file(p, json.dumps({"kind": "report", "n": 2}), may_replace=own, what="--json")
    assert json.loads(p.read_text())["n"] == 2
    (tmp_path / "data.json").write_text('{"precious": true}')
    with pytest.raises(files.OutputError, match="not a file this command wrote"):
        files.write_file(tmp_path / "data.json", "{}", may_replace=own, what="--json")
    with pytest.raises(files.OutputError, match="not a regular file"):
        files.write_file(tmp_path, "{}", may_replace=own, what="--json")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["data.json", "r.json"]
