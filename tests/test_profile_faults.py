"""Faults and the simulation clock chosen in a profile reach the instruments of a real run."""

import textwrap

from operando.acquisition.config import PROFILES_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment

PROTOCOL = textwrap.dedent(
    """
    name: one_cycle
    steps:
      - {kind: rest, duration_min: 5}
      - {kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_h: 1}
      - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
    """
)


def test_a_disconnect_scheduled_in_the_profile_costs_frames_not_the_run(tmp_path):
    profile_text = (
        (PROFILES_DIR / "sim.yaml")
        .read_text()
        .replace(
            "  seed: 0\n",
            "  seed: 0\n  faults:\n    - {instrument: raman, kind: disconnect, at_s: 1200, duration_s: 1800}\n",
        )
        .replace(
            "settings: {exposure_s: 10, accumulations: 2, period_s: 300}",
            "settings: {exposure_s: 10, accumulations: 2, period_s: 120}",
        )
    )
    (tmp_path / "lab.yaml").write_text(profile_text)
    (tmp_path / "one.yaml").write_text(PROTOCOL)
    events = []
    result = run_experiment(
        load_profile(tmp_path / "lab.yaml"),
        load_protocol(tmp_path / "one.yaml"),
        tmp_path / "data",
        speed=2000,
        report=False,
        callbacks=[lambda n, d: events.append((n, d))],
    )
    assert result.exit_status == "success"
    streams = {d["uid"]: d["name"] for n, d in events if n == "descriptor"}
    failures = [d for n, d in events if n == "event" and streams[d["descriptor"]] == "frame_failures"]
    ramans = [d for n, d in events if n == "event" and streams[d["descriptor"]] == "raman"]
    assert failures and all("injected disconnect" in f["data"]["failure-error"] for f in failures)
    # Frames before and after the 30-minute outage, none during it. (The schedule is armed
    # when the instruments are built, so the outage is placed by the failures' own times.)
    first = min(f["data"]["failure-time"] for f in failures)
    last = max(f["data"]["failure-time"] for f in failures)
    times = [r["data"]["raman-exposure_start"] for r in ramans]
    assert any(t < first for t in times) and any(t > last for t in times)
    assert not any(first < t < last for t in times)
    assert last - first <= 1800


def test_faults_must_name_an_instrument_of_the_profile(tmp_path):
    from operando.acquisition.config import ConfigError

    text = (
        (PROFILES_DIR / "sim.yaml")
        .read_text()
        .replace("  seed: 0\n", "  seed: 0\n  faults: [{instrument: squid, kind: timeout}]\n")
    )
    (tmp_path / "lab.yaml").write_text(text)
    try:
        load_profile(tmp_path / "lab.yaml")
    except ConfigError as exc:
        assert "lab.yaml: sim: faults: timeout on unknown instrument 'squid'" in str(exc)
    else:
        raise AssertionError("a fault on an unknown instrument was accepted")


def _run_to_stop(tmp_path, profile_text):
    """Run a 5-minute rest; the stored stop document (the run raises its error)."""
    from operando.storage.catalog import open_catalog

    (tmp_path / "lab.yaml").write_text(profile_text)
    (tmp_path / "rest.yaml").write_text("name: rest\nsteps:\n  - {kind: rest, duration_min: 5}\n")
    try:
        run_experiment(
            load_profile(tmp_path / "lab.yaml"), load_protocol(tmp_path / "rest.yaml"), tmp_path / "data", report=False
        )
    except Exception as exc:
        raised = exc
    else:
        raise AssertionError("the run did not fail")
    with open_catalog(tmp_path / "data") as catalog:
        return raised, catalog.client.values().last().metadata["stop"]


def test_a_failure_at_the_start_is_the_stop_reason_not_a_status_object(tmp_path):
    text = (PROFILES_DIR / "sim.yaml").read_text()
    fault = "  faults: [{instrument: potentiostat, kind: timeout, at_s: 0, delay_s: 1}]\n"
    raised, stop = _run_to_stop(tmp_path, text.replace("  seed: 0\n", "  seed: 0\n" + fault))
    assert stop["exit_status"] == "fail"
    assert stop["reason"] == "potentiostat: no reply to start() within 1 s (injected timeout fault)"
    assert type(raised).__name__ == "InstrumentTimeout"


def test_an_error_before_the_echem_stream_exists_keeps_its_own_reason(tmp_path, monkeypatch):
    from operando.devices.potentiostat import Potentiostat

    async def broken(self):
        raise RuntimeError("describe failed on purpose")

    monkeypatch.setattr(Potentiostat, "describe_collect", broken)
    _, stop = _run_to_stop(tmp_path, (PROFILES_DIR / "sim.yaml").read_text())
    assert stop["exit_status"] == "fail"
    assert "describe failed on purpose" in stop["reason"]
    assert "declare" not in stop["reason"]
