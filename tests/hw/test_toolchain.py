"""Where the external tools are (gxnor.hw.toolchain)."""

import os

from gxnor.hw import toolchain


def test_toolchain_points_at_yowasp_and_verilator():
    env = {"PATH": "/usr/bin", "YOSYS": "/custom/yosys"}
    changed = toolchain.setup(env)
    assert env["YOSYS"] == "/custom/yosys" and "YOSYS" not in changed  # user's choice kept
    for var in ("NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK"):
        assert os.path.basename(env[var]).startswith("yowasp-")
    vbin = toolchain.verilator_bin()
    assert vbin is not None and env["PATH"].split(os.pathsep)[0] == str(vbin)
    assert os.access(vbin / "verilator", os.X_OK)
