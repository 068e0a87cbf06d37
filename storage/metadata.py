"""The RunEngine's persisted metadata (scan ids keep counting across processes)."""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path


class JsonMetadataStore(MutableMapping):
    """RunEngine metadata persisted as JSON, so scan_id keeps counting across processes.

    Written atomically (temp file + rename) on every change; no pickle, no code.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._data: dict = {}
        if self.path.exists():
            try:
                self._data = json.loads(self.path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{self.path}: corrupt RunEngine metadata ({exc})") from None

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._data, indent=1, default=str))
        os.replace(tmp, self.path)

    def __getitem__(self, key):
        return self._data[key]

    def __setitem__(self, key, value):
        self._data[key] = value
        self._save()

    def __delitem__(self, key):
        del self._data[key]
        self._save()

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)
