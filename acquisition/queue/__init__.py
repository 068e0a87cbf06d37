"""Queued and remote runs: bluesky-queueserver runs operando's plans; documents stream over 0MQ.

- ``startup/``: the queue server worker's startup profile (devices come from the profile
  named in each queue item, through ``acquisition/prepare.py``).
- ``worker``: the worker's RunEngine (same catalog writer as ``make_run_engine``) and plans.
- ``server``: the ``start-re-manager`` command line, bound to loopback unless a key is set.
- ``documents``: the 0MQ document proxy, publisher and ``subscribe_documents`` consumer.
- ``serialization``: msgpack with numpy arrays; never pickle.
"""
