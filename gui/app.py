"""`operando gui`: the window, or a headless screenshot of a stored run."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def qt_app(offscreen: bool = False):
    """The QApplication (created once); offscreen when asked or when there is no display."""
    if offscreen or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("MPLBACKEND", "Agg")  # matplotlib (reports) must never pick Qt here
    from PySide6 import QtWidgets

    from .plots import configure

    configure()
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["operando"])


def screenshot(window, path: Path) -> Path:
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    for _ in range(3):
        app.processEvents()
    window.refresh(force=True)
    app.processEvents()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        raise OSError(f"{path}: could not write the screenshot")
    return path


def run(
    data_dir: Path,
    replay: str | None = None,
    shot: Path | None = None,
    at: float | None = None,
    size: tuple[int, int] = (1680, 1050),
    in_process: bool = False,
) -> int:
    """The window; runs it starts acquire in a child process unless ``in_process``."""
    app = qt_app(offscreen=shot is not None)
    from .controller import InProcessRunControl
    from .process_control import ProcessRunControl
    from .window import MainWindow

    window = MainWindow(data_dir, InProcessRunControl() if in_process else ProcessRunControl())
    window.resize(*size)
    window.show()
    if replay is not None:
        window.open_run(replay)
        if at is not None:
            window.scrub(at)
    if shot is not None:
        print(screenshot(window, shot))
        window.close()
        return 0
    return app.exec()


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data")))
