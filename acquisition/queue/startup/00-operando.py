# Startup code for bluesky-queueserver's worker (start-re-manager --startup-dir ...).
# Everything lives in operando.acquisition.queue.worker; this only names what the queue server
# looks for: `RE` and the plans a queue item may call.
from operando.acquisition.queue.worker import operando_protocol, start_session  # noqa: F401

RE = start_session()
del start_session
