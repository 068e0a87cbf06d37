"""The 0MQ document codec (msgpack + numpy buffers) and the queue server launcher's address rules."""

import pickle

import numpy as np
import pytest

from operando.acquisition.queue.serialization import deserialize, serialize
from operando.acquisition.queue.server import KEY_ENV, UnsafeAddressError, manager_command

TRIGGERED = []


class _Evil:
    def __reduce__(self):  # what a malicious pickle would run on loads()
        return (TRIGGERED.append, ("ran",))


def test_documents_round_trip_with_numpy_arrays():
    doc = {
        "uid": "abc",
        "data": {"spectrum": np.arange(2068, dtype="<u2"), "E": np.float64(3.25), "ok": np.bool_(True)},
        "map": np.linspace(0, 1, 12).reshape(3, 4).astype(">f4"),
        "shape": (3, 4),
        "labels": np.array(["a", "bc"]),
    }
    back = deserialize(serialize(doc))
    assert back["uid"] == "abc"
    np.testing.assert_array_equal(back["data"]["spectrum"], doc["data"]["spectrum"])
    assert back["data"]["spectrum"].dtype == np.dtype("<u2")
    assert back["data"]["E"] == 3.25 and back["data"]["ok"] is True
    np.testing.assert_array_equal(back["map"], doc["map"])
    assert back["map"].shape == (3, 4) and back["map"].flags.writeable
    assert back["shape"] == [3, 4]
    assert list(back["labels"]) == ["a", "bc"]


def test_object_arrays_are_refused_both_ways():
    with pytest.raises(TypeError, match="dtype object"):
        serialize({"x": np.array([object()], dtype=object)})
    # A hand-made frame claiming an object dtype is refused on receipt.
    import msgpack

    frame = msgpack.packb({"x": msgpack.ExtType(42, msgpack.packb(["|O", [1]]) + b"\0" * 8)})
    with pytest.raises(ValueError, match="refusing numpy dtype"):
        deserialize(frame)


def test_a_pickle_from_the_wire_is_never_unpickled():
    payload = pickle.dumps({"doc": _Evil()})
    try:
        deserialize(payload)
    except Exception:
        pass
    assert TRIGGERED == []


def test_control_socket_is_loopback_unless_keyed(tmp_path):
    argv, env = manager_command(tmp_path, env={})
    assert argv[argv.index("--zmq-control-addr") + 1] == "tcp://127.0.0.1:60615"
    assert argv[argv.index("--zmq-info-addr") + 1] == "tcp://127.0.0.1:60625"
    assert env["OPERANDO_DATA"] == str(tmp_path)
    with pytest.raises(UnsafeAddressError, match=KEY_ENV):
        manager_command(tmp_path, control="tcp://*:60615", env={})
    argv, _ = manager_command(tmp_path, control="tcp://*:60615", env={KEY_ENV: "k" * 40})
    assert "tcp://*:60615" in argv
    # The document stream and info socket carry no key: loopback only.
    with pytest.raises(UnsafeAddressError, match="docs_out"):
        manager_command(tmp_path, docs_out="tcp://0.0.0.0:60636", env={KEY_ENV: "k" * 40})
