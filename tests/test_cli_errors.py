"""Bad input: a clear error naming the file and field, exit status 2, nothing started."""

import pytest

from operando.acquisition.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_malformed_protocol_names_file_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - {kind: cc, c_rate: 1, e_max_v: 3.0}\n")
    data = tmp_path / "data"
    code, out, err = run_cli(capsys, "run", str(bad), "--data", str(data))
    assert code == 2
    assert "bad.yaml" in err and "steps[0].e_max_v" in err
    assert not (data / "catalog.db").exists()  # no catalog, no instrument


def test_current_above_the_limit_is_refused_before_anything_starts(tmp_path, capsys):
    proto = tmp_path / "fast.yaml"
    proto.write_text("name: fast\nsteps:\n  - {kind: cc, c_rate: 20, e_max_V: 3.0}\n")
    data = tmp_path / "data"
    code, out, err = run_cli(capsys, "run", str(proto), "--data", str(data))
    assert code == 2
    assert "fast.yaml" in err and "steps[0].c_rate" in err and "i_max_A" in err
    assert not (data / "catalog.db").exists()


def test_unknown_profile_lists_the_available_ones(tmp_path, capsys):
    code, out, err = run_cli(capsys, "run", "galvanostatic_cycling", "--profile", "nosuch", "--data", str(tmp_path))
    assert code == 2
    assert "nosuch" in err and "sim" in err


def test_unwritable_data_directory_is_named(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, out, err = run_cli(capsys, "run", "galvanostatic_cycling", "--data", str(blocker / "data"))
    assert code == 2
    assert str(blocker / "data") in err and "not writable" in err


@pytest.mark.parametrize("speed", ["0", "-5"])
def test_non_positive_speed_is_refused(tmp_path, capsys, speed):
    code, out, err = run_cli(capsys, "run", "galvanostatic_cycling", "--speed", speed, "--data", str(tmp_path))
    assert code == 2 and "--speed" in err


def test_unknown_run_is_a_clear_error(tmp_path, capsys):
    code, out, err = run_cli(capsys, "show", "deadbeef", "--data", str(tmp_path))
    assert code == 2 and "no run matches 'deadbeef'" in err


def test_unknown_simulated_material_names_the_field(tmp_path, capsys):
    from operando.acquisition.config import PROFILES_DIR

    profile = tmp_path / "lab.yaml"
    profile.write_text((PROFILES_DIR / "sim.yaml").read_text().replace("material: fe_li2o", "material: unobtainium"))
    data = tmp_path / "data"
    code, out, err = run_cli(capsys, "run", "galvanostatic_cycling", "--profile", str(profile), "--data", str(data))
    assert code == 2
    assert "lab.yaml" in err and "sim.material" in err and "unobtainium" in err
    assert not (data / "catalog.db").exists()


def test_a_run_that_faults_says_so_in_one_line_and_the_traceback_only_with_debug(tmp_path):
    """A CV step that starts 1.5 V from where the cell rests: the jump through the cell's resistance
    draws more than the profile's 10 mA. What the user sees: one line naming the instrument, the
    cause, the step and its technique, and the state the cell was left in."""
    import subprocess
    import sys

    proto = tmp_path / "jump.yaml"
    proto.write_text(
        "name: jump\nsteps:\n  - {kind: rest, duration_s: 60}\n"
        "  - {kind: cv, e_start_V: 1.5, e_vertex1_V: 2.0, e_vertex2_V: 1.0, scan_rate_V_s: 0.001}\n"
    )
    cmd = [sys.executable, "-m", "operando.acquisition.cli", "run", str(proto), "--speed", "20000", "--quiet"]
    cmd += ["--no-report", "--data", str(tmp_path / "data")]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 1
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, plain.stderr
    (line,) = lines
    assert line.startswith("operando: error: potentiostat: excursion beyond limits: Ewe=1.5000 V")
    assert line.endswith("in step 2 (cv, cycle 0); the cell was left at open circuit")
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, timeout=300)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
