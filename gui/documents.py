"""Bluesky documents → ``RunData``: the one path by which a live run reaches the panels.

Detector streams arrive as events (one row each). The echem stream arrives as StreamResource /
StreamDatum documents pointing into an HDF5 file the potentiostat is still writing (SWMR): for
each StreamDatum the new rows ``[indices.start, indices.stop)`` of its column are read from that
file. Reading is cheap (a few hundred rows per collect) and happens in the GUI thread, never in
the acquisition thread.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

import h5py
import numpy as np
from event_model import DocumentRouter

from .model import RunData


class DocumentHandler(DocumentRouter):
    """Feeds one ``RunData`` (a new one at every start document)."""

    def __init__(self, on_new_run=None):
        super().__init__()
        self.data = RunData()
        self._on_new_run = on_new_run  # called with the fresh RunData when a run starts
        self._descriptors: dict[str, str] = {}  # descriptor uid -> stream name
        self._resources: dict[str, dict] = {}  # stream resource uid -> document
        self._files: dict[str, h5py.File] = {}

    # -- run -------------------------------------------------------------------------------
    def start(self, doc):
        self.close_files()
        self.data = RunData()
        self._descriptors.clear()
        self._resources.clear()
        self.data.set_start(doc)
        if self._on_new_run is not None:
            self._on_new_run(self.data)
        return doc

    def stop(self, doc):
        self.data.set_stop(doc)
        self.close_files()
        return doc

    def descriptor(self, doc):
        self._descriptors[doc["uid"]] = doc["name"]
        config = {}
        for per_device in (doc.get("configuration") or {}).values():
            config.update(per_device.get("data") or {})
        self.data.add_stream(doc["name"], doc["data_keys"], config)
        return doc

    # -- detector events -------------------------------------------------------------------
    def event_page(self, doc):
        name = self._descriptors.get(doc["descriptor"])
        if name is not None:
            rows = {key: np.asarray(values) for key, values in doc["data"].items()}
            rows["time"] = np.asarray(doc["time"], dtype=float)
            self.data.append(name, rows)
        return doc

    # -- fast streams in HDF5 ----------------------------------------------------------------
    def stream_resource(self, doc):
        self._resources[doc["uid"]] = doc
        return doc

    def stream_datum(self, doc):
        resource = self._resources.get(doc["stream_resource"])
        name = self._descriptors.get(doc["descriptor"])
        if resource is None or name is None:
            return doc
        start, stop = doc["indices"]["start"], doc["indices"]["stop"]
        dataset = self._dataset(resource)
        dataset.refresh()  # SWMR: see rows the writer flushed after we opened the file
        self.data.append(name, {resource["data_key"]: dataset[start:stop]})
        return doc

    def _dataset(self, resource: dict) -> h5py.Dataset:
        path = unquote(urlparse(resource["uri"]).path)
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = h5py.File(path, "r", swmr=True)
        return f[resource["parameters"]["dataset"]]

    def close_files(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except Exception:  # a file already closed by h5py at shutdown
                pass
        self._files.clear()
