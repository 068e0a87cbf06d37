"""A suspension requested while a message is being processed, whose coroutine catches the
cancellation and returns a value, must suspend and resume the run, not end it with bluesky's
``TypeError: can't send non-None value to a just-started generator`` (seen in CI: a GUI run as the
laser interlock opened)."""

import asyncio

from bluesky import Msg
from bluesky import plan_stubs as bps

from operando.acquisition.session import OperandoRunEngine


def _run_with_suspension_during(command_finishes_anyway: bool):
    RE = OperandoRunEngine({})

    calls = []

    async def finishes_despite_cancel(msg):
        calls.append(msg)
        if len(calls) > 1:  # replayed after the suspension: the interlock has closed
            return "a fresh response"
        release = asyncio.Event()
        RE.request_suspend(release.wait, justification="interlock open")
        asyncio.get_running_loop().call_later(0.2, release.set)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if not command_finishes_anyway:
                raise
        return "a stale response"

    RE.register_command("finishes_despite_cancel", finishes_despite_cancel)
    seen = []

    def plan():
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield Msg("finishes_despite_cancel")
        seen.append("after")
        yield from bps.close_run()

    docs = []
    RE(plan(), lambda name, doc: docs.append((name, doc)))
    return seen, docs, len(calls)


def test_a_cancelled_message_that_returns_anyway_still_suspends_and_resumes():
    seen, docs, calls = _run_with_suspension_during(command_finishes_anyway=True)
    stop = [d for n, d in docs if n == "stop"][0]
    assert stop["exit_status"] == "success", stop
    assert seen == ["after"]
    assert calls == 2  # the suspension rewound to the checkpoint and replayed the message


def test_a_cancelled_message_still_suspends_and_resumes():
    seen, docs, calls = _run_with_suspension_during(command_finishes_anyway=False)
    assert [d for n, d in docs if n == "stop"][0]["exit_status"] == "success"
    assert seen == ["after"]
    assert calls == 2
