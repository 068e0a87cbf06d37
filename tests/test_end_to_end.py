"""Run → catalog → read back through `operando serve` and a stock Tiled client."""

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from event_model import DocumentNames, schema_validators

from operando.acquisition.config import PROFILES_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment

PROTOCOL = textwrap.dedent(
    """
    name: short_cycling
    description: two fast cycles for tests
    steps:
      - {kind: rest, duration_min: 2}
      - kind: loop
        repeat: 2
        steps:
          - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
          - {kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_h: 1}
    """
)


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    protocol_file = base / "short.yaml"
    protocol_file.write_text(PROTOCOL)
    data = base / "data"
    data.mkdir()
    # The virtual clock: frames happen at their scheduled experiment times however loaded the
    # machine is (a scaled clock at 20000x skipped most of them on a busy machine).
    profile_file = base / "sim-virtual.yaml"
    profile_file.write_text(
        (PROFILES_DIR / "sim.yaml").read_text().replace("  seed: 0\n", "  seed: 0\n  clock: virtual\n")
    )
    docs = []
    result = run_experiment(
        load_profile(profile_file),
        load_protocol(protocol_file),
        data,
        speed=20000,
        callbacks=[lambda name, doc: docs.append((name, doc))],
    )
    return data, result, docs


def test_every_document_is_schema_valid(stored_run):
    _, result, docs = stored_run
    assert result.exit_status == "success"
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    names = [n for n, _ in docs]
    assert names[0] == "start" and names[-1] == "stop"
    streams = sorted(d["name"] for n, d in docs if n == "descriptor")
    assert streams == ["echem", "interruptions", "magnetometer", "raman", "timebase"]
    assert "stream_resource" in names and "stream_datum" in names


def test_report_is_written(stored_run):
    _, result, _ = stored_run
    assert result.report.exists() and result.report.stat().st_size > 20_000
    assert result.report.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    operando = list(result.report.parent.glob("*-operando.png"))
    assert len(operando) == 1 and operando[0].stat().st_size > 20_000


def test_band_centre_finds_a_shifted_band():
    from operando.analysis.report import band_area, band_centre

    shift = np.linspace(100, 1800, 1024)
    spectra = np.array([100 + 0.02 * shift + 500 / (1 + ((shift - c) / 7.0) ** 2) for c in (499.0, 503.5)])
    centres = band_centre(shift, spectra, 470, 540)
    assert centres == pytest.approx([499.0, 503.5], abs=0.3)
    assert centres[1] - centres[0] == pytest.approx(4.5, abs=0.3)
    areas = band_area(shift, spectra, 470, 540)
    assert areas[0] == pytest.approx(areas[1], rel=0.02) and areas[0] > 0


def test_stock_tiled_client_reads_the_run_through_operando_serve(stored_run):
    from tiled.client import from_uri

    data, result, _ = stored_run
    server = subprocess.Popen(
        [sys.executable, "-m", "operando.acquisition.cli", "serve", "--data", str(data), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_serving_line(server)
        uri = line.split(" ", 1)[1].strip()
        assert uri.startswith("http://127.0.0.1:")  # loopback by default
        client = from_uri(uri)
        run = client[result.uid]
        assert client[-1].metadata["start"]["uid"] == result.uid
        assert client[result.scan_id].metadata["start"]["uid"] == result.uid
        assert client[result.uid[:8]].metadata["start"]["uid"] == result.uid
        assert set(run) >= {"echem", "magnetometer", "raman"}

        echem = run["echem"]
        ewe = echem["Ewe"].read()
        t = echem["timestamp"].read()
        assert ewe.shape[0] >= 1000
        assert np.all(np.diff(t) > 0)  # one time base, strictly increasing
        assert 0.0 < ewe.min() and ewe.max() <= 3.0 + 0.06
        assert set(np.unique(echem["cycle"].read())) == {0, 1, 2}

        moment = run["magnetometer"]["magnetometer-moment"].read()
        assert moment.shape[0] >= 10 and np.ptp(moment) > 0  # the moment follows cycling
        spectra = run["raman"]["raman-spectrum"].read()
        assert spectra.ndim == 2 and spectra.shape[1] == 1024

        start = run.metadata["start"]
        assert start["sample"]["active_mass_g"] == 0.002
        assert run.metadata["stop"]["exit_status"] == "success"
    finally:
        server.terminate()
        server.wait(timeout=20)


def _read_serving_line(proc, timeout=60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("Serving "):
            return line
        if proc.poll() is not None:
            raise AssertionError(f"operando serve exited: {proc.stderr.read()}")
    raise AssertionError("operando serve printed no 'Serving' line")


def test_scan_id_keeps_counting_across_processes(stored_run):
    data, result, _ = stored_run
    cli = [sys.executable, "-m", "operando.acquisition.cli"]
    second = subprocess.run(
        cli
        + ["run", str(data.parent / "short.yaml"), "--data", str(data), "--speed", "50000", "--no-report", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    assert f"(scan {result.scan_id + 1})" in second.stdout
    listing = subprocess.run(cli + ["runs", "--data", str(data)], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert result.uid[:8] in listing.stdout and listing.stdout.count("success") == 2
