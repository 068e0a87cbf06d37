# Startup code for bluesky-queueserver's worker (start-re-manager --startup-dir ...).
# Everything lives in operando.acquisition.queue.worker; this only names what the queue server
# looks for: `RE` and the plans a queue item may call.
from operando.acquisition.queue.worker import (  # noqa: F401
    operando_mh_loop,
    operando_mt_sweep,
    operando_protocol,
    operando_raman_map,
    operando_skpm_map,
    start_session,
)

RE = start_session()
del start_session
