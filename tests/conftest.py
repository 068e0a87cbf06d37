"""Fixtures shared by the test modules."""

import gc

import pytest


@pytest.fixture
def gc_on_the_gui_thread():
    """Cyclic garbage (closed windows, pyqtgraph's parentless menus) is collected here, on the GUI
    thread, not by the automatic collector on whichever thread allocates (the catalog's in-process
    server, a run's threads): Qt destructors run there deadlock with the GUI thread's (Qt's
    signal-slot mutex against the GIL; seen as a hung test_gui_window after the other modules)."""
    gc.collect()
    gc.disable()
    yield
    gc.collect()
    gc.enable()


@pytest.fixture
def open_from_browser():
    """As a user opens a stored run in the GUI: search the runs for its uid, open the row found."""

    def open_run(window, uid: str) -> None:
        window.browser.text.setText(uid[:8])
        window.browser.search()
        assert window.browser.table.rowCount() == 1
        window.browser.open_row(0)
        assert window.data.start["uid"] == uid

    return open_run
