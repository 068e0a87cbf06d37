"""`operando calibrate-raman`: the Raman-shift axis against a reference (``raman_calibration.py``);
`operando raman-map`: a line or area map on a profile with a stage, through ``Lab`` (the same code
as an IPython session's ``lab.raman_line_map`` / ``lab.raman_area_map``)."""

from __future__ import annotations

import math
import sys

from operando.devices.configuration import ConfigError


def add_command(sub, data_help: str) -> None:
    cal = sub.add_parser("calibrate-raman", help="check the Raman-shift axis against silicon; store the offset")
    cal.add_argument("--profile", default="sim", help="profile name or YAML path (default: sim)")
    cal.add_argument("--reference", default="silicon", choices=["silicon"], help="the reference in the beam")
    cal.add_argument("--instrument", help="Raman instrument name, when the profile has several")
    cal.add_argument("--exposure-s", type=float, default=1.0, help="per accumulation (default 1)")
    cal.add_argument("--accumulations", type=int, default=2)
    cal.add_argument("--speed", type=float, help="simulation clock speed-up (sim backends only)")
    cal.add_argument("--data", help=data_help)
    cal.add_argument("--yes", action="store_true", help="the reference is in the beam: do not ask")
    cal.set_defaults(func=_cmd_calibrate)

    mp = sub.add_parser("raman-map", help="Raman spectra over a line or an area, moving the profile's stage")
    mp.add_argument("--profile", default="raman-map-sim", help="profile name or YAML path (default: raman-map-sim)")
    mp.add_argument(
        "--x-um", help="area: x START:STOP:N (µm, N points); write --x-um=-100:100:11 when START is negative"
    )
    mp.add_argument("--y-um", help="area: y START:STOP:N (µm)")
    mp.add_argument(
        "--line", help="line: X0,Y0:X1,Y1 (µm), with --points; write --line=-100,0:100,0 when X0 is negative"
    )
    mp.add_argument("--points", type=int, help="line: number of spectra, both ends included")
    mp.add_argument("--no-snake", action="store_true", help="area: every row in the same direction")
    mp.add_argument("--no-restore", action="store_true", help="leave the stage at the map's last point")
    mp.add_argument("--raman", help="Raman instrument name, when the profile has several")
    mp.add_argument("--stage", help="stage instrument name, when the profile has several")
    mp.add_argument("--speed", type=float, help="simulation clock speed-up (sim backends only)")
    mp.add_argument("--data", help=data_help)
    mp.add_argument("--quiet", action="store_true", help="no line per point")
    mp.set_defaults(func=_cmd_map)


def _cmd_calibrate(args) -> int:
    from .ipython import open_lab
    from .raman_calibration import calibrate_raman, calibration_path

    lab = open_lab(args.profile, data=args.data, speed=args.speed)
    try:
        if lab.instruments.sim_lab is None and not args.yes:
            input(f"Put the {args.reference} reference in the beam, then press Enter: ")
        record = calibrate_raman(
            lab,
            args.reference,
            instrument=args.instrument,
            exposure_s=args.exposure_s,
            accumulations=args.accumulations,
        )
    finally:
        lab.close()
    print(
        f"{record.instrument}: {record.reference} band at {record.fitted_cm1:.2f} ± {record.fitted_err_cm1:.2f} cm-1 "
        f"on the instrument's axis; offset {record.offset_cm1:+.2f} cm-1 stored in "
        f"{calibration_path(lab.data_dir, record.instrument)} and applied to every later run on this data directory "
        f"(calibration run {record.run_uid[:8]})",
        file=sys.stdout,
    )
    return 0


def _axis(text: str, option: str) -> tuple[float, float, int]:
    try:
        start, stop, n = text.split(":")
        values = float(start), float(stop), int(n)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected START:STOP:N in µm, e.g. -100:100:11") from None
    if not all(math.isfinite(v) for v in values[:2]) or values[2] < 1:
        raise ConfigError(f"{option} {text!r}: needs finite START and STOP and N >= 1")
    return values


def _line(text: str) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        a, b = text.split(":")
        ends = tuple(tuple(float(v) for v in end.split(",")) for end in (a, b))
        if any(len(end) != 2 or not all(math.isfinite(v) for v in end) for end in ends):
            raise ValueError
    except ValueError:
        raise ConfigError(f"--line {text!r}: expected X0,Y0:X1,Y1 in µm, e.g. -100,0:100,0") from None
    return ends


def _map_plan(args, lab):
    kw = {"raman": args.raman, "stage": args.stage, "restore": not args.no_restore}
    if args.line is not None:
        if args.x_um or args.y_um or args.points is None:
            raise ConfigError("a line map takes --line X0,Y0:X1,Y1 and --points N (not --x-um/--y-um)")
        start, stop = _line(args.line)
        return lab.raman_line_map(start, stop, args.points, **kw)
    if not (args.x_um and args.y_um) or args.points is not None:
        raise ConfigError("give --x-um and --y-um (an area) or --line and --points (a line)")
    x, y = _axis(args.x_um, "--x-um"), _axis(args.y_um, "--y-um")
    return lab.raman_area_map(x, y, snake=not args.no_snake, **kw)


def _cmd_map(args) -> int:
    from .ipython import open_lab

    lab = open_lab(args.profile, data=args.data, speed=args.speed)
    try:
        try:
            plan = _map_plan(args, lab)
        except ValueError as exc:  # a point beyond the stage's travel, too few points
            raise ConfigError(str(exc)) from None
        printer = _MapPrinter(args.quiet)
        uids = lab.RE(plan, printer)
    finally:
        lab.close()
    uid = uids[0] if uids else None
    print(
        f"run {uid} ended: {printer.exit_status}, {printer.count} spectra; see `operando analyse {uid[:8]}`"
        if uid
        else "no run was stored"
    )
    return 0 if printer.exit_status == "success" else 1


class _MapPrinter:
    """A line per spectrum (where it was taken); remembers how the run ended."""

    def __init__(self, quiet: bool):
        self.quiet, self.count, self.exit_status, self.total = quiet, 0, "unknown", None

    def __call__(self, name: str, doc: dict) -> None:
        if name == "start":
            self.total = doc.get("num_points")
        elif name == "event":
            self.count += 1
            if not self.quiet:
                at = {k[-1]: v for k, v in doc["data"].items() if k.endswith(("-x", "-y"))}
                where = ", ".join(f"{axis} = {at[axis]:g}" for axis in "xy" if axis in at)
                print(f"spectrum {self.count}/{self.total or '?'} at {where} µm", flush=True)
        elif name == "stop":
            self.exit_status = doc.get("exit_status", "unknown")
