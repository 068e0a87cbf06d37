"""MethodSCRIPT for every technique: byte-exact script text and the reply layout of each loop."""

import pytest

from operando.devices.backends.methodscript import MethodScriptPotentiostatBackend
from operando.devices.backends.methodscript_steps import build_script
from operando.devices.drivers.methodscript_protocol import (
    DataPackage,
    MeasLoopEnd,
    MeasLoopStart,
    ScriptAccepted,
    parse_reply_line,
)
from operando.devices.safety import UnsupportedTechnique
from operando.devices.techniques import (
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    LinearSweep,
    PotentiostaticEis,
    ScheduledStep,
)
from operando.sim_devices.wire.methodscript_language import parse_script

HEADER = (
    "var t\nvar ewe\nvar iwe\nvar step_no\nvar tend\nvar n\nvar cut\nvar f\nvar zre\nvar zim\n"
    "set_pgstat_chan 0\nset_range ab 4\nset_autoranging ab 100m 4\ntimer_start\n"
)
FOOTER = "on_finished:\ncell_off\n"
PKG_EI = "timer_get t\npck_start\npck_add t\npck_add ewe\npck_add iwe\npck_add step_no\npck_end\n"
PKG_E = "timer_get t\npck_start\npck_add t\npck_add ewe\npck_add step_no\npck_end\n"
PKG_Z = ("timer_get t\npck_start\npck_add t\npck_add f\npck_add zre\npck_add zim\npck_add ewe\n"
         "pck_add iwe\npck_add step_no\npck_end\n")  # fmt: skip
STEP = "store_var step_no 4i ja\n"
POT = "set_pgstat_mode 3\nset_max_bandwidth 5850m\n"
GALV = "set_pgstat_mode 6\nset_max_bandwidth 5850m\n"

EXPECTED = {
    "cccv charge": (
        ConstantCurrentConstantVoltage(current_A=2e-3, e_hold_V=4.2, i_cutoff_A=1e-4, max_duration_s=7200),
        "timer_get tend\nadd_var tend 7200\n" + GALV + "set_range db 2m\ncell_on\n"
        "meas_loop_cp ewe iwe 2m 1 7200\n" + PKG_EI + "if ewe >= 4200m\nbreakloop\nendif\nendloop\n"
        "timer_get t\nif t < tend\nset_pgstat_mode 3\nset_e 4200m\n"
        "meas_loop_ca ewe iwe 4200m 1 7200\n" + PKG_EI + "if iwe <= 100u\nif iwe >= -100u\nbreakloop\nendif\nendif\n"
        "if t >= tend\nbreakloop\nendif\nendloop\nendif\n",
    ),
    "cccv discharge, no time limit": (
        ConstantCurrentConstantVoltage(current_A=-5e-4, e_hold_V=0.05, i_cutoff_A=2e-5),
        "timer_get tend\nadd_var tend 864k\n" + GALV + "set_range db 500u\ncell_on\n"
        "meas_loop_cp ewe iwe -500u 1 864k\n" + PKG_EI + "if ewe <= 50m\nbreakloop\nendif\nendloop\n"
        "timer_get t\nif t < tend\nset_pgstat_mode 3\nset_e 50m\n"
        "meas_loop_ca ewe iwe 50m 1 864k\n" + PKG_EI + "if iwe <= 20u\nif iwe >= -20u\nbreakloop\nendif\nendif\n"
        "if t >= tend\nbreakloop\nendif\nendloop\nendif\n",
    ),
    "lsv": (
        LinearSweep(e_start_V=3.0, e_end_V=1.5, scan_rate_V_s=5e-4, e_step_V=0.002),
        POT + "set_e 3\ncell_on\nmeas_loop_lsv ewe iwe 3 1500m 2m 500u\n" + PKG_EI + "endloop\n",
    ),
    "cv": (
        CyclicVoltammetry(e_start_V=2.0, e_vertex1_V=3.0, e_vertex2_V=0.5, scan_rate_V_s=1e-3, cycles=3),
        POT + "set_e 2\ncell_on\nmeas_loop_cv ewe iwe 2 3 500m 1m 1m nscans(3)\n" + PKG_EI + "endloop\n",
    ),
    "ca with cut-off": (
        ConstantPotential(e_V=3.6, duration_s=3600, i_cutoff_A=5e-6),
        POT
        + "set_e 3600m\ncell_on\nmeas_loop_ca ewe iwe 3600m 1 3600\n"
        + PKG_EI
        + "if iwe <= 5u\nif iwe >= -5u\nbreakloop\nendif\nendif\nendloop\n",
    ),
    "ca": (
        ConstantPotential(e_V=0.8, duration_s=60),
        POT + "set_e 800m\ncell_on\nmeas_loop_ca ewe iwe 800m 1 60\n" + PKG_EI + "endloop\n",
    ),
    "gitt": (
        Gitt(current_A=1e-3, pulse_s=600, relax_s=3600, e_max_V=4.2, max_pulses=20),
        "store_var n 0i ja\nstore_var cut 0i ja\nloop n < 20i\n"
        + GALV
        + "set_range db 1m\ncell_on\nmeas_loop_cp ewe iwe 1m 1 600\n"
        + PKG_EI
        + "if ewe >= 4200m\nstore_var cut 1i ja\nbreakloop\nendif\nendloop\n"
        "add_var n 1i\ncell_off\nset_pgstat_mode 3\nmeas_loop_ocp ewe 1 3600\n"
        + PKG_E
        + "endloop\nif cut > 0i\nbreakloop\nendif\nendloop\n",
    ),
    "gitt discharge until cut-off": (
        Gitt(current_A=-1e-3, pulse_s=300, relax_s=1200, e_min_V=0.01),
        "store_var n 0i ja\nstore_var cut 0i ja\nloop n < 1000000i\n"
        + GALV
        + "set_range db 1m\ncell_on\nmeas_loop_cp ewe iwe -1m 1 300\n"
        + PKG_EI
        + "if ewe <= 10m\nstore_var cut 1i ja\nbreakloop\nendif\nendloop\n"
        "add_var n 1i\ncell_off\nset_pgstat_mode 3\nmeas_loop_ocp ewe 1 1200\n"
        + PKG_E
        + "endloop\nif cut > 0i\nbreakloop\nendif\nendloop\n",
    ),
    "peis at ocp": (
        PotentiostaticEis(f_max_Hz=1e5, f_min_Hz=0.1, points_per_decade=5, amplitude_V=0.01),
        "set_pgstat_mode 3\nset_max_bandwidth 100k\ncell_off\nmeas_loop_ocp ewe 100m 100m\n"
        + PKG_E
        + "endloop\nstore_var iwe 0 ba\nset_e ewe\ncell_on\n"
        "meas_loop_eis f zre zim 7071u 100k 100m 31i ewe\n" + PKG_Z + "endloop\n",
    ),
    "peis at a set potential": (
        PotentiostaticEis(e_dc_V=3.3, f_max_Hz=1e4, f_min_Hz=1, points_per_decade=10, amplitude_V=0.005),
        "set_pgstat_mode 3\nset_max_bandwidth 10k\nset_e 3300m\ncell_on\n"
        "meas_loop_ca ewe iwe 3300m 100m 100m\n" + PKG_EI + "endloop\ncell_on\n"
        "meas_loop_eis f zre zim 3536u 10k 1 41i ewe\n" + PKG_Z + "endloop\n",
    ),
    "geis at 0 A": (
        GalvanostaticEis(amplitude_A=1e-4, f_max_Hz=1e4, f_min_Hz=0.01, points_per_decade=4),
        "set_pgstat_mode 6\nset_max_bandwidth 10k\nset_range db 100u\ncell_off\n"
        "meas_loop_ocp ewe 100m 100m\n" + PKG_E + "endloop\nstore_var iwe 0 ba\ncell_on\n"
        "meas_loop_geis f zre zim 70710n 10k 10m 25i 0\n" + PKG_Z + "endloop\n",
    ),
    "geis at a dc current": (
        GalvanostaticEis(i_dc_A=-2e-4, amplitude_A=5e-5, f_max_Hz=1e3, f_min_Hz=1, points_per_decade=2),
        "set_pgstat_mode 6\nset_max_bandwidth 1k\nset_range db 250u\ncell_on\n"
        "meas_loop_cp ewe iwe -200u 100m 100m\n" + PKG_EI + "endloop\ncell_on\n"
        "meas_loop_geis f zre zim 35360n 1k 1 7i -200u\n" + PKG_Z + "endloop\n",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_script_text_is_byte_exact(name):
    technique, body = EXPECTED[name]
    lines = build_script([ScheduledStep(technique=technique, cycle=2, step=4)])
    assert "".join(f"{line}\n" for line in lines) == HEADER + STEP + body + FOOTER
    parse_script(lines)  # and the simulated firmware (written from the manual) accepts it


def test_number_of_frequencies_matches_the_technique():
    peis = PotentiostaticEis(f_max_Hz=1e5, f_min_Hz=0.1, points_per_decade=5)
    assert len(peis.frequencies_Hz) == 31  # the "31i" above


def test_backend_check_names_the_step_it_cannot_script(tmp_path):
    class _NoPort:
        port = "/dev/ttyNONE"

    backend = MethodScriptPotentiostatBackend(_NoPort())
    ok = ScheduledStep(technique=ConstantPotential(e_V=1.0, duration_s=10), cycle=1, step=1)
    backend.check([ok])
    # 1.5e-20 s is below the finest prefix (f): no script literal can write it
    bad = ScheduledStep(technique=ConstantPotential(e_V=1.0, duration_s=1.5e-20), cycle=1, step=9)
    with pytest.raises(UnsupportedTechnique, match=r"/dev/ttyNONE.*step 9 \(ca\)"):
        backend.check([ok, bad])


# ---- reply layouts -------------------------------------------------------------------------
REPLY = """e
M0007
Peb8000001 ;da8393870u;ba80186A0n,10,215;ja8000004i
*
M000E
Peb8000064m;dcDF5E100m;cc8989680u;cd7FFAA10u;ab80A8750u;ba8000000 ;ja8000005i
*

"""


def test_potentiostatic_and_impedance_packages_parse_into_columns():
    events = [e for line in REPLY.split("\n")[:-1] for e in parse_reply_line(line)]
    assert [type(e) for e in events[:4]] == [ScriptAccepted, MeasLoopStart, DataPackage, MeasLoopEnd]
    assert [e.technique for e in events if isinstance(e, MeasLoopStart)] == [7, 14]
    ca, eis = [e for e in events if isinstance(e, DataPackage)]
    assert ca.first("ab") is None and ca.first("da").value == pytest.approx(3.75)
    assert ca.first("ba").value == pytest.approx(100e-6)
    assert eis.first("dc").value == pytest.approx(100_000.0)
    assert eis.first("cc").value == pytest.approx(10.0)
    assert eis.first("cd").value == pytest.approx(-0.022)
    assert eis.first("ab").value == pytest.approx(0.69)
    assert eis.first("ja").value == 5
