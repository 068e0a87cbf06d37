"""The main window: set-up and run browser on the left, run control on top, live panels, time bar.

One timer (10 Hz) moves documents from the run control into the ``DocumentHandler`` and redraws
what changed; a stored run is shown through the same panels from its arrays (``stored.py``).
"""

from __future__ import annotations

import logging
import time
import weakref
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from .browser import BrowserPanel
from .controller import InProcessRunControl, RunControl
from .documents import DocumentHandler
from .formatting import fmt
from .model import RunData
from .panels_cycling import CyclingPanel
from .panels_detectors import MapPanel, MomentPanel, RamanPanel, StatusPanel
from .panels_echem import CapacityPanel, DqDvPanel, EchemTimePanel
from .panels_impedance import ImpedancePanel, find_impedance
from .panels_magnetometry import MagnetometryPanel, find_sweeps
from .panels_raman_bands import RamanBandsPanel, find_spectra
from .plots import boxed
from .run_panel import RunPanel
from .setup_panel import SetupPanel
from .stored import StoredRun, open_stored
from .stored_setup import StoredSetupPanel
from .timebar import TimeBar

REFRESH_MS = 100
SETUP_TAB, STORED_SETUP_TAB = "Set-up", "Set-up of the stored run"


class CatalogBusy(RuntimeError):
    """The catalog is being written by another process (see ``MainWindow.catalog_busy``)."""


log = logging.getLogger(__name__)


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, data_dir: Path, control: RunControl | None = None):
        super().__init__()
        self.setWindowTitle("operando — in-situ acquisition")
        self.data_dir = Path(data_dir)
        self.control = control or InProcessRunControl()
        self.handler = DocumentHandler(on_new_run=self._live_run_started)
        self.data: RunData = RunData()
        self.viewing_live = True
        self.stored: StoredRun | None = None
        self._catalog = None
        self._replay_until: float | None = None
        self._replay_wall: float | None = None
        self._broken: set = set()  # panels whose drawing failed (logged once)
        self.open_timings: dict[str, float] = {}  # seconds per stage of the last open_run

        self.setup = SetupPanel()
        # While a stored run is shown, its own set-up (from its start document) takes the place
        # of the set-up panel, which keeps the user's choices for the next run meanwhile.
        self.stored_setup = StoredSetupPanel()
        self.stored_setup.back_clicked.connect(self.show_live)
        self.setup_stack = QtWidgets.QStackedWidget()
        self.setup_stack.addWidget(self.setup)
        self.setup_stack.addWidget(self.stored_setup)
        self._setup_shows: StoredRun | None = None  # the stored run whose set-up is shown
        self.browser = BrowserPanel(self.catalog_client)
        self.browser.open_requested.connect(self.open_run)
        side = QtWidgets.QTabWidget()
        side.addTab(self.setup_stack, SETUP_TAB)
        side.addTab(self.browser, "Runs")
        side.setMinimumWidth(440)
        self.side = side

        self.echem = EchemTimePanel()
        self.moment = MomentPanel()
        self.capacity = CapacityPanel()
        self.dqdv = DqDvPanel()
        self.raman = RamanPanel()
        self.map = MapPanel()
        self.status = StatusPanel()
        self.impedance = ImpedancePanel()
        self.magnetometry = MagnetometryPanel()
        self.raman_bands = RamanBandsPanel()
        self.cycling = CyclingPanel()
        self.panels = [
            self.echem,
            self.moment,
            self.capacity,
            self.dqdv,
            self.raman,
            self.map,
            self.impedance,
            self.magnetometry,
            self.raman_bands,
            self.cycling,
            self.status,
        ]
        # Maps, impedance and M–T/M–H share a place: a run rarely has two of them, and a hidden
        # tab costs nothing.
        self.lower_tabs = QtWidgets.QTabWidget()
        self.lower_tabs.addTab(self.map, "Map (any 2-D stream)")
        self.lower_tabs.addTab(self.impedance, "Impedance")
        self.lower_tabs.addTab(self.magnetometry, "M–T / M–H")
        self.lower_tabs.addTab(self.raman_bands, "Raman bands")
        self.lower_tabs.addTab(self.cycling, "Cycling")
        self._tab_chosen_for = None  # weak reference to the RunData the tab was chosen for
        self._raman_tab_for = None  # ... the Raman bands tab was chosen for (the others may follow)
        grid = QtWidgets.QGridLayout()
        grid.setSpacing(4)
        grid.addWidget(self.echem, 0, 0)
        grid.addWidget(self.moment, 0, 1)
        grid.addWidget(self.capacity, 1, 0)
        grid.addWidget(self.dqdv, 1, 1)
        grid.addWidget(boxed("Raman", self.raman), 2, 0, 1, 2)
        grid.addWidget(self.lower_tabs, 3, 0)
        grid.addWidget(boxed("Instruments", self.status), 3, 1)
        for r, stretch in enumerate((3, 3, 3, 3)):
            grid.setRowStretch(r, stretch)
        for c in (0, 1):  # equal halves, whatever a panel's title or legend asks for
            grid.setColumnStretch(c, 1)
        dashboard = QtWidgets.QWidget()
        dashboard.setLayout(grid)

        self.run_panel = RunPanel()
        self.run_panel.start_clicked.connect(self.start_run)
        self.run_panel.pause_clicked.connect(self.control.pause)
        self.run_panel.resume_clicked.connect(self.control.resume)
        self.run_panel.abort_clicked.connect(self.abort_run)
        self.setup.validity_changed.connect(self._set_ready)
        self._set_ready(self.setup.steps is not None)
        self.timebar = TimeBar()
        self.timebar.scrubbed.connect(self.scrub)
        self.timebar.play_toggled.connect(self.replay)
        self.timebar.follow_latest.connect(self.follow_latest)
        self.title = QtWidgets.QLabel()
        self.title.setStyleSheet("font-size: 11pt; font-weight: 600; padding: 2px 6px")
        # A stored several-cell run: which cell the panels show (the Cycling tab overlays them all)
        self.cell_select = QtWidgets.QComboBox()
        self.cell_select.setToolTip("the cell of this several-cell run that the panels show")
        self.cell_select.currentTextChanged.connect(self.select_cell)
        self.cell_label = QtWidgets.QLabel("cell")
        self._cells_of: str | None = None  # uid of the several-cell run the selector lists
        header = QtWidgets.QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.cell_label)
        header.addWidget(self.cell_select)
        self._show_cell_select([])

        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(header)
        rl.addWidget(dashboard, 1)
        rl.addWidget(self.timebar)
        split = QtWidgets.QSplitter()
        split.addWidget(side)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([460, 1200])
        central = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(central)
        cl.setContentsMargins(2, 2, 2, 2)
        cl.addWidget(self.run_panel)
        cl.addWidget(split, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage(f"data directory: {self.data_dir}")

        self.timer = QtCore.QTimer(self, interval=REFRESH_MS)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    # -- catalog -----------------------------------------------------------------------------
    def _tables_exclusive(self) -> bool:
        from operando.storage.catalog import single_process_tables

        return single_process_tables(self.data_dir)

    def catalog_busy(self) -> str | None:
        """Why the catalog cannot be opened here now, if it cannot.

        Event tables in SQLite (WAL) are read here while a child process writes them. Only a data
        directory from before that keeps DuckDB tables, which one process at a time may open:
        while a child runs, this window then leaves the catalog alone.
        """
        if getattr(self.control, "separate_process", False) and self.control.busy and self._tables_exclusive():
            return (
                "the running acquisition (its own process) is writing the catalog: stored runs "
                "open when it ends (or start the GUI with --in-process)"
            )
        return None

    def release_catalog(self) -> None:
        if self.stored is not None:
            self.stored.close()  # its background reads go through this catalog: none after it
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def catalog_client(self):
        busy = self.catalog_busy()
        if busy:
            raise CatalogBusy(busy)
        if self._catalog is None:
            from operando.storage.catalog import open_catalog, resolve_data_dir

            self._catalog = open_catalog(resolve_data_dir(self.data_dir))
        return self._catalog.client

    # -- live runs ---------------------------------------------------------------------------
    def _set_ready(self, ok: bool):
        self.run_panel.ready = ok
        self.run_panel.show_status(self.control.status)

    def start_run(self):
        selection = self.setup.selection()
        if selection is None:
            return
        from operando.acquisition.config import ConfigError
        from operando.storage.catalog import resolve_data_dir

        profile, _ = selection
        try:
            data_dir = resolve_data_dir(self.data_dir)
            protocol = self.setup.protocol_for_run(data_dir)
            if getattr(self.control, "separate_process", False) and self._tables_exclusive():
                self.release_catalog()  # the child process must be able to write DuckDB tables
            self.control.start(profile, protocol, data_dir, self.setup.speed.value())
        except (ConfigError, OSError, RuntimeError) as exc:  # nothing was started
            self.statusBar().showMessage(f"not started: {exc}")
            QtWidgets.QMessageBox.warning(self, "Run not started", str(exc))
            return
        self.timebar.play.setChecked(False)
        self.viewing_live = True
        self.data = self.handler.data = RunData()
        self.run_panel.show_status(self.control.status)

    def abort_run(self):
        self.control.abort("aborted from the GUI")

    def _live_run_started(self, data: RunData):
        if self.viewing_live:
            self.data = data

    # -- stored runs -------------------------------------------------------------------------
    def open_run(self, ref: str, cell: str | None = None):
        """Show a stored run; of a several-cell run, ``cell`` (default: its first) through the
        panels, every cell in the Cycling tab's overlay and the selector above the panels."""
        from operando.analysis.cells_cycling import analyse_cells
        from operando.analysis.run_cells import CellRun, cell_names
        from operando.storage.runs import find_run

        self.timebar.play.setChecked(False)
        busy = self.catalog_busy()
        if busy:
            self.statusBar().showMessage(f"cannot open {ref}: {busy}")
            return
        timings = {}
        t = time.perf_counter()
        run = find_run(self.catalog_client(), ref)
        timings["find run"] = time.perf_counter() - t
        cells = cell_names(run.metadata["start"])
        if cells:
            uid = run.metadata["start"]["uid"]
            cell = cell if cell in cells else cells[0]
            if self._cells_of != uid:  # a run newly opened: its cells' overlay (the same run: kept)
                self.cycling.show_cells(analyse_cells(run), cell)
                timings["cells overlay"] = time.perf_counter() - t
            self.cycling.select_cell(cell)
            self._cells_of = uid
            self._show_cell_select(cells, cell)
            run = CellRun(run, cell)
        else:
            self._leave_cells()
        stored = open_stored(run, timings=timings)  # what the panels draw; the rest when shown
        if self.stored is not None:
            self.stored.close()
        self.stored = stored
        t = time.perf_counter()
        self.data = self.stored.new_data()
        self.stored.feed(self.data, self.stored.t_end)
        self.viewing_live = False
        timings["feed"] = time.perf_counter() - t
        t = time.perf_counter()
        self.refresh(force=True)
        timings["panels drawn"] = time.perf_counter() - t
        self.open_timings = timings  # seconds per stage (the benchmark prints them)

    def select_cell(self, cell: str) -> None:
        """The selector's choice: that cell of the stored several-cell run through the panels."""
        if cell and self._cells_of is not None and not self.viewing_live:
            if self.data.start.get("cell") != cell:
                self.open_run(self._cells_of, cell)

    def _leave_cells(self) -> None:
        """No stored several-cell run on screen: no selector, no overlay."""
        self._cells_of = None
        self._show_cell_select([])
        self.cycling.show_cells(None)

    def _show_cell_select(self, cells: list[str], current: str | None = None) -> None:
        blocked = self.cell_select.blockSignals(True)  # filling it is no choice of the user's
        try:
            if [self.cell_select.itemText(i) for i in range(self.cell_select.count())] != cells:
                self.cell_select.clear()
                self.cell_select.addItems(cells)
            if current is not None:
                self.cell_select.setCurrentText(current)
        finally:
            self.cell_select.blockSignals(blocked)
        self.cell_select.setVisible(bool(cells))
        self.cell_label.setVisible(bool(cells))

    def replay(self, on: bool):
        if not on or self.stored is None:
            self._replay_until = None
            if on:
                self.timebar.play.setChecked(False)
            return
        start = self.data.cursor if self.data.cursor is not None else self.stored.t0
        if start >= self.stored.t_end:
            start = self.stored.t0
        self.data = self.stored.new_data()
        self.stored.feed(self.data, start)
        self._replay_until, self._replay_wall = start, time.monotonic()

    def _replay_step(self):
        now = time.monotonic()
        self._replay_until += (now - self._replay_wall) * self.timebar.speed_value
        self._replay_wall = now
        if self.stored.feed(self.data, self._replay_until):
            self.timebar.play.setChecked(False)

    # -- time --------------------------------------------------------------------------------
    def scrub(self, fraction: float):
        """Show every panel at this moment of the run (a fraction of its time span)."""
        if self.stored is not None and not self.viewing_live:
            self.timebar.play.setChecked(False)
            self.stored.feed(self.data, self.stored.t_end)  # the whole run, cursor inside it
        t0, t1 = self.data.t0(), self.data.t_end()
        if t0 is None:
            return
        self.data.cursor = t0 + fraction * (t1 - t0)
        self.refresh()

    def set_cursor(self, t: float | None):
        self.data.cursor = t
        self.refresh()

    def follow_latest(self):
        if not self.viewing_live and self.control.status.uid is not None:
            self.viewing_live = True
            self.data = self.handler.data
            self._leave_cells()
        self.data.cursor = None
        self.refresh()

    def show_live(self):
        """Leave the stored run: the live (or an empty) view and the set-up panel for a new run."""
        self.timebar.play.setChecked(False)
        self.viewing_live = True
        self.data = self.handler.data
        self.data.cursor = None
        self._leave_cells()
        self.refresh(force=True)

    # -- the clock ---------------------------------------------------------------------------
    def tick(self):
        for name, doc in self.control.drain():
            self.handler(name, doc)
        status = self.control.status
        self.run_panel.show_status(status)
        if status.instruments:
            self.setup.set_connection(status.instruments)
        self.status.states = status.instruments if self.viewing_live and status.instruments else {}
        if self._replay_until is not None:
            self._replay_step()
        if self.stored is not None:
            self.stored.read_later()  # a long run's remaining subset, once it has been drawn
        self.refresh()

    def refresh(self, force: bool = False) -> int:
        """Redraw panels whose data changed; returns how many redrew."""
        n = 0
        if self.stored is not None:
            self.stored.deliver()  # rows read in the background: all panels below see them
        self._show_setup()
        self._choose_lower_tab()
        for panel in self.panels:
            try:
                n += panel.refresh(self.data, force)
            except Exception:  # one panel's bug must not freeze the others (or the run)
                if panel not in self._broken:
                    log.exception("%s failed to draw", type(panel).__name__)
                    self._broken.add(panel)
        self._show_position()
        return n

    def _show_setup(self):
        """The set-up panel in the live view; the stored run's own set-up while one is shown."""
        stored = None if self.viewing_live else self.stored
        if stored is self._setup_shows:
            return
        self._setup_shows = stored
        index = self.side.indexOf(self.setup_stack)
        if stored is None:
            self.setup_stack.setCurrentWidget(self.setup)
            self.side.setTabText(index, SETUP_TAB)
        else:
            self.stored_setup.show_run(stored.start, stored.stop)
            self.setup_stack.setCurrentWidget(self.stored_setup)
            self.side.setTabText(index, STORED_SETUP_TAB)

    def _choose_lower_tab(self):
        """Once per run, as soon as it has M–T/M–H, a map or impedance: show the tab that has data
        (an M–T or M–H run is about that; a map before impedance otherwise). A run with Raman
        spectra and none of them shows its Raman bands."""
        d = self.data
        if self._tab_chosen_for is not None and self._tab_chosen_for() is d:
            return
        m_t, m_h = find_sweeps(d)
        has_mag = bool(m_t or m_h)
        has_map = any(s.keys_of_ndim(2) for s in d.detector_streams())
        has_z = find_impedance(d) is not None
        if has_mag or has_map or has_z:
            chosen = self.magnetometry if has_mag else self.impedance if has_z and not has_map else self.map
            self.lower_tabs.setCurrentWidget(chosen)
            self._tab_chosen_for = weakref.ref(d)
        elif (self._raman_tab_for is None or self._raman_tab_for() is not d) and find_spectra(d)[0] is not None:
            # Raman spectra and none of those (yet): the bands, once; a map, impedance or M–T/M–H
            # appearing later in the run still takes the place once
            self.lower_tabs.setCurrentWidget(self.raman_bands)
            self._raman_tab_for = weakref.ref(d)

    def _show_position(self):
        d = self.data
        t0, t1 = d.t0(), d.t_end()
        self.title.setText(self._title(d.start))
        if t0 is None:
            self.timebar.show_position(0, "no data")
            return
        at = d.at()
        span = max(t1 - t0, 1e-9)
        end = self.stored.t_end if (self.stored is not None and not self.viewing_live) else t1
        frac = (at - t0) / max(end - t0, 1e-9)
        i, e = d.echem_at(at)  # the sample's own values, also in a long run's decimated table
        state = (
            f"E {fmt(e['Ewe'], '.3f', 'V')} · cycle {fmt(e['cycle'], 'd')} step {fmt(e['step'], 'd')}"
            if i is not None
            else ""
        )
        mode = "cursor" if d.cursor is not None else "latest"
        text = f"{mode} t = {fmt((at - t0) / 3600, '.3f')} h of {fmt(span / 3600, '.2f')} h"
        self.timebar.show_position(frac, f"{text} · {state}" if state else text)  # no echem: no state

    def _title(self, start: dict) -> str:
        """``LIVE run 3 · 98d7b2d9 · sample · protocol``: the parts the start document has."""
        if not start:
            return "No run — start one or open a stored run"
        source = "LIVE" if self.viewing_live else "stored"
        sample = start.get("sample")
        sample = sample.get("name") if isinstance(sample, dict) else sample
        uid = str(start.get("uid") or "")[:8]
        parts = [
            f"{source} run {fmt(start.get('scan_id'), 'd')}",
            *(fmt(p, dash="") for p in (uid, sample, start.get("protocol") or start.get("plan_name"))),
        ]
        if start.get("cell"):  # one cell of a several-cell run
            parts.append(f"cell {start['cell']} ({fmt(start.get('channel'), dash='')})")
        return " · ".join(p for p in parts if p)

    # -- closing -----------------------------------------------------------------------------
    def closeEvent(self, event):
        # Closing the window never stops a run: its thread keeps acquiring and storing (the
        # process exits when the run has ended), or its child process does.
        self.timer.stop()
        if getattr(self.control, "busy", False):
            print(
                "operando gui: window closed; the run continues until its protocol ends "
                f"(uid {self.control.status.uid})",
                flush=True,
            )
        if hasattr(self.control, "detach"):
            self.control.detach()  # a child process: it goes on unobserved
        self.handler.close_files()
        if self.stored is not None:
            self.stored.close()  # its background reads and files
        self.release_catalog()
        super().closeEvent(event)
